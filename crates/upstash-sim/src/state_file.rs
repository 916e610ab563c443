//! The optional state file: databases kept across restarts. It holds
//! credentials, so it is only ever written privately and atomically.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use super::database::Database;

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read state file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    #[error("state file {} is not valid: {source}", path.display())]
    Invalid { path: PathBuf, source: serde_json::Error },
}

/// The databases in `path`; none when it does not exist yet.
pub fn load(path: &Path) -> Result<BTreeMap<String, Database>, LoadError> {
    if !path.exists() {
        return Ok(BTreeMap::new());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| LoadError::Unreadable { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|source| LoadError::Invalid { path: path.to_owned(), source })
}

/// Replaces `path` with `bytes` atomically: they go to a new file of random
/// name in the same directory, created exclusively (never through an existing
/// file or symlink) with mode 0600, synced, then renamed over `path`.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // tempfile creates with O_CREAT|O_EXCL and mode 0600 on Unix.
    let mut file = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    // Makes the rename itself durable; some file systems cannot sync a
    // directory, and the data is already safe in the file, so this is best effort.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use uuid::Uuid;

    use super::*;

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
