//! The optional state file: databases kept across restarts. It holds
//! credentials, so it is only ever written privately: a new file, created
//! exclusively with mode 0600, synced and renamed over the path, then kept
//! open for appends.
//!
//! Each change is one JSON line appended and synced (`{"put": database}` or
//! `{"delete": id}`), so a request costs the same with ten databases or ten
//! thousand. The file is rewritten whole, one `put` per database, when it
//! is opened and once its lines outnumber twice the databases: amortised,
//! still a constant per change. A file of the older format, one JSON object
//! of every database, is read and rewritten as lines.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write as _,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use super::database::Database;

/// Lines a file may hold beyond twice its databases before it is rewritten:
/// a small state is not rewritten every few changes.
const SLACK_LINES: usize = 1024;

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read state file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("state file {} is not valid at line {line}: {source}", path.display())]
    Invalid { path: PathBuf, line: usize, source: serde_json::Error },
    #[error("cannot write state file {}: {source}", path.display())]
    Unwritable { path: PathBuf, source: std::io::Error },
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line<D> {
    Put(D),
    Delete(String),
}

/// A change to record.
pub enum Change<'a> {
    Put(&'a Database),
    Delete(&'a str),
}

/// The state file, open for appending.
pub struct Journal {
    path: PathBuf,
    file: File,
    lines: usize,
    /// An append failed and may have left part of a line: the next change
    /// rewrites the file instead of appending after it.
    torn: bool,
}

impl Journal {
    /// Reads `path` (none yet: no databases), rewrites it as one line per
    /// database, and keeps it open for the changes to come.
    pub fn open(path: &Path) -> Result<(Self, BTreeMap<String, Database>), LoadError> {
        let databases = load(path)?;
        let (file, lines) = rewrite(path, &databases)
            .map_err(|source| LoadError::Unwritable { path: path.to_owned(), source })?;
        Ok((Self { path: path.to_owned(), file, lines, torn: false }, databases))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `change`, synced before it returns; `all` is every database
    /// after it, written out only when the file is rewritten.
    pub fn record(&mut self, change: Change<'_>, all: &BTreeMap<String, Database>) -> std::io::Result<()> {
        if self.torn || self.lines >= 2 * all.len() + SLACK_LINES {
            let (file, lines) = rewrite(&self.path, all)?;
            (self.file, self.lines, self.torn) = (file, lines, false);
            return Ok(());
        }
        let line = match change {
            Change::Put(db) => serde_json::to_vec(&Line::Put(db)),
            Change::Delete(id) => serde_json::to_vec(&Line::<&Database>::Delete(id.to_owned())),
        }
        .map_err(std::io::Error::other)?;
        let appended = self.append(line);
        self.torn = appended.is_err();
        appended
    }

    fn append(&mut self, mut line: Vec<u8>) -> std::io::Result<()> {
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()?;
        self.lines += 1;
        Ok(())
    }
}

/// The databases in `path`; none when it does not exist yet. A last line
/// without its newline is an append cut short by a crash: the change it
/// held was never answered, so it is dropped.
fn load(path: &Path) -> Result<BTreeMap<String, Database>, LoadError> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| LoadError::Unreadable { path: path.to_owned(), source })?;
    // The older format: every database in one object, keyed by its id (a
    // file of one `put` line parses as such an object too, keyed `put`).
    if let Ok(databases) = serde_json::from_str::<BTreeMap<String, Database>>(&text)
        && databases.iter().all(|(id, db)| *id == db.id)
    {
        return Ok(databases);
    }
    let mut databases = BTreeMap::new();
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    for (number, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Line<Database>>(line) {
            Ok(Line::Put(db)) => {
                databases.insert(db.id.clone(), db);
            }
            Ok(Line::Delete(id)) => {
                databases.remove(&id);
            }
            Err(_) if !complete && number + 1 == lines.len() => {}
            Err(source) => {
                return Err(LoadError::Invalid { path: path.to_owned(), line: number + 1, source });
            }
        }
    }
    Ok(databases)
}

/// Replaces `path` with one line per database; the new file, open, and its
/// line count.
fn rewrite(path: &Path, databases: &BTreeMap<String, Database>) -> std::io::Result<(File, usize)> {
    let mut text = Vec::new();
    for db in databases.values() {
        serde_json::to_writer(&mut text, &Line::Put(db)).map_err(std::io::Error::other)?;
        text.push(b'\n');
    }
    Ok((write_private(path, &text)?, databases.len()))
}

/// Replaces `path` with `bytes` atomically: they go to a new file of random
/// name in the same directory, created exclusively (never through an existing
/// file or symlink) with mode 0600, synced, then renamed over `path`. Returns
/// that file, open for writing after `bytes`.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<File> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // tempfile creates with O_CREAT|O_EXCL and mode 0600 on Unix.
    let mut file = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    let file = file.persist(path).map_err(|e| e.error)?;
    // Makes the rename itself durable; some file systems cannot sync a
    // directory, and the data is already safe in the file, so this is best effort.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use uuid::Uuid;

    use super::*;

    fn database(id: &str, resets: u64) -> Database {
        Database { resets, ..Database::example(id) }
    }

    fn lines(path: &Path) -> usize {
        std::fs::read_to_string(path).expect("read").lines().count()
    }

    fn resets(databases: &BTreeMap<String, Database>) -> Vec<(String, u64)> {
        databases.values().map(|db| (db.id.clone(), db.resets)).collect()
    }

    #[test]
    fn each_change_is_one_line_and_a_restart_replays_them() {
        let path = scratch_dir().join("state.json");
        let (mut journal, loaded) = Journal::open(&path).expect("open");
        assert!(loaded.is_empty());
        assert_eq!(mode(&path), 0o600, "created private at once");
        let mut all = BTreeMap::new();
        for (id, resets) in [("a", 0), ("b", 0), ("a", 1), ("c", 0)] {
            all.insert(id.to_owned(), database(id, resets));
            journal.record(Change::Put(&all[id]), &all).expect("put");
        }
        all.remove("b");
        journal.record(Change::Delete("b"), &all).expect("delete");
        assert_eq!(lines(&path), 5, "appended, not rewritten");
        assert_eq!(mode(&path), 0o600);
        drop(journal);

        let (_, loaded) = Journal::open(&path).expect("reopen");
        assert_eq!(resets(&loaded), [("a".into(), 1), ("c".into(), 0)]);
        assert_eq!(lines(&path), 2, "rewritten at start: one line per database");
    }

    #[test]
    fn a_change_costs_one_line_whatever_the_number_of_databases() {
        let path = scratch_dir().join("state.json");
        let (mut journal, _) = Journal::open(&path).expect("open");
        let mut all = BTreeMap::new();
        for i in 0..3000 {
            let id = format!("db-{i}");
            all.insert(id.clone(), database(&id, 0));
            journal.record(Change::Put(&all[&id]), &all).expect("put");
        }
        assert_eq!(lines(&path), 3000);
        let size = std::fs::metadata(&path).expect("size").len();
        journal.record(Change::Put(&all["db-1"]), &all).expect("put");
        let line = serde_json::to_vec(&Line::Put(&all["db-1"])).expect("json").len() as u64 + 1;
        assert_eq!(std::fs::metadata(&path).expect("size").len(), size + line, "one line appended");
        // Rewritten only once the lines outnumber twice the databases (and
        // the slack): thousands of changes apart.
        let mut rewrites = 0;
        for i in 0..(3000 + SLACK_LINES + 10) {
            let before = journal.lines;
            journal.record(Change::Put(&all[&format!("db-{}", i % 3000)]), &all).expect("put");
            rewrites += usize::from(journal.lines < before);
        }
        assert_eq!(rewrites, 1);
        drop(journal);
        let (_, loaded) = Journal::open(&path).expect("reopen");
        assert_eq!(loaded.len(), 3000);
    }

    #[test]
    fn a_cut_last_line_is_dropped_and_a_bad_line_elsewhere_is_named() {
        let dir = scratch_dir();
        let path = dir.join("state.json");
        let put = |id| serde_json::to_string(&Line::Put(&database(id, 0))).expect("json");
        // A crash in the middle of an append: that change was never answered.
        let cut = put("b");
        std::fs::write(&path, format!("{}\n{}", put("a"), &cut[..cut.len() / 2])).expect("write");
        let (_, loaded) = Journal::open(&path).expect("open");
        assert_eq!(resets(&loaded), [("a".into(), 0)]);

        std::fs::write(&path, format!("{}\nnot json\n{}\n", put("a"), put("b"))).expect("write");
        let error = Journal::open(&path).err().expect("refused");
        assert!(error.to_string().contains("at line 2"), "{error}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_file_of_the_older_format_is_read_and_rewritten_as_lines() {
        let path = scratch_dir().join("state.json");
        let older: BTreeMap<String, Database> =
            ["a", "b"].into_iter().map(|id| (id.to_owned(), database(id, 3))).collect();
        std::fs::write(&path, serde_json::to_string_pretty(&older).expect("json")).expect("write");
        let (_, loaded) = Journal::open(&path).expect("open");
        assert_eq!(resets(&loaded), [("a".into(), 3), ("b".into(), 3)]);
        assert_eq!(lines(&path), 2);
        // A file of one `put` line is an object too: it is not mistaken for
        // that format.
        let line = serde_json::to_string(&Line::Put(&database("c", 0))).expect("json");
        std::fs::write(&path, format!("{line}\n")).expect("write");
        let (_, single) = Journal::open(&path).expect("reopen");
        assert_eq!(resets(&single), [("c".into(), 0)]);
    }

    fn scratch_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("upstash-sim-state-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn state_file_is_private_even_when_it_existed_with_another_mode() {
        let dir = scratch_dir();
        let path = dir.join("state.json");
        std::fs::write(&path, "old").expect("pre-existing file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private(&path, b"{}").expect("write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}");
        assert_eq!(mode(&path), 0o600);
        let entries: Vec<_> =
            std::fs::read_dir(&dir).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(entries, ["state.json"], "no temporary file is left behind");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn predictable_temporary_paths_are_not_followed() {
        let dir = scratch_dir();
        let path = dir.join("state.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").expect("victim");
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        // The old implementation wrote through `state.tmp`; guess a few more.
        let traps = ["state.tmp", "state.json.tmp", ".state.json.tmp"].map(|n| dir.join(n));
        for trap in &traps {
            std::os::unix::fs::symlink(&victim, trap).expect("symlink");
        }
        for round in 0..3 {
            write_private(&path, format!("{{\"round\": {round}}}").as_bytes()).expect("write");
        }
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "untouched");
        assert_eq!(mode(&victim), 0o644);
        for trap in &traps {
            let meta = std::fs::symlink_metadata(trap).expect("trap still there");
            assert!(meta.file_type().is_symlink(), "{} was replaced", trap.display());
        }
        assert_eq!(std::fs::read_to_string(&path).expect("state"), "{\"round\": 2}");
        assert_eq!(mode(&path), 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_symlink_at_the_target_is_replaced_not_followed() {
        let dir = scratch_dir();
        let path = dir.join("state.json");
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").expect("victim");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink");
        write_private(&path, b"{}").expect("write");
        assert_eq!(std::fs::read_to_string(&victim).expect("victim"), "untouched");
        assert!(!std::fs::symlink_metadata(&path).expect("state").file_type().is_symlink());
        assert_eq!(mode(&path), 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }
}
