//! Credential strings where they must never be: operator logs, events,
//! resource statuses. Two nets: every credential the run saw, and patterns
//! that catch ones it never saw (a password lost with its reset answer).

use std::collections::BTreeSet;

use base64::{Engine as _, engine::general_purpose::URL_SAFE};

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Needles {
    /// Every password, token and API key the run saw.
    pub known: BTreeSet<String>,
    /// Database ids: every REST token of a database embeds its id, so the
    /// id's base64 form finds tokens the run never saw.
    pub database_ids: BTreeSet<String>,
}

impl Needles {
    pub fn add_known(&mut self, value: &str) {
        // Short strings would match by chance; the simulator's are 32+ chars.
        if value.len() >= 16 {
            self.known.insert(value.to_owned());
        }
    }

    /// Token fragments: `URL_SAFE(kind ‖ port ‖ 01 24 20 ‖ id ‖ secret)`,
    /// where the id starts on a 3-byte boundary, so its encoding is fixed.
    fn token_fragments(&self) -> Vec<String> {
        self.database_ids.iter().filter(|id| id.len() % 3 == 0).map(|id| URL_SAFE.encode(id)).collect()
    }
}

/// One leak: where, and what kind (never the value itself).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Leak {
    pub source: String,
    pub kind: &'static str,
}

/// Scans `text` from `source`; one finding per distinct leaked value.
pub fn scan(source: &str, text: &str, needles: &Needles) -> Vec<Leak> {
    let mut found = Vec::new();
    for value in &needles.known {
        if text.contains(value.as_str()) {
            found.push(Leak { source: source.to_owned(), kind: "credential seen by the run" });
        }
    }
    for fragment in needles.token_fragments() {
        if text.contains(&fragment)
            && !needles.known.iter().any(|k| k.contains(&fragment) && text.contains(k))
        {
            found.push(Leak { source: source.to_owned(), kind: "REST token (by its database id)" });
        }
    }
    for run in hex_runs(text) {
        if run.len() == 32 && !needles.known.contains(run) {
            found.push(Leak { source: source.to_owned(), kind: "32-hex-digit string (password shape)" });
        }
    }
    found
}

/// Maximal runs of lowercase hex digits not glued to other word characters.
fn hex_runs(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if hex(bytes[i]) && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && hex(bytes[i]) {
                i += 1;
            }
            if i == bytes.len() || !word(bytes[i]) {
                runs.push(&text[start..i]);
            }
        } else {
            i += 1;
        }
    }
    runs
}

/// `text` with every known credential replaced, safe to print.
pub fn redact(text: &str, needles: &Needles) -> String {
    let mut out = text.to_owned();
    for value in &needles.known {
        out = out.replace(value.as_str(), "<redacted>");
    }
    for fragment in needles.token_fragments() {
        out = out.replace(&fragment, "<redacted-token-part>");
    }
    let runs: BTreeSet<String> =
        hex_runs(&out).into_iter().filter(|r| r.len() == 32).map(str::to_owned).collect();
    for run in runs {
        out = out.replace(&run, "<redacted-hex>");
    }
    out
}
