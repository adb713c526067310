//! Log files of background processes: appended to across restarts, so the evidence of a
//! crash survives the restart that follows it, and rotated by size (one older file kept as
//! `NAME.1`) so they never fill the disk.

use std::fs::File;
use std::path::Path;

/// A log grows to this size before it is rotated.
pub const ROTATE_BYTES: u64 = 16 << 20;

/// Opens `path` for appending (rotating it first when it has grown past `ROTATE_BYTES`);
/// returns the file and its length before anything new is written, so a reader can look
/// only at what this run writes.
pub fn open_append(path: &Path) -> std::io::Result<(File, u64)> {
    if std::fs::metadata(path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        std::fs::rename(path, old)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let start = file.metadata()?.len();
    Ok((file, start))
}

/// What was written to `path` from byte `start` on (lossy UTF-8).
pub fn read_since(path: &Path, start: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = (start as usize).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_are_appended_and_read_from_where_a_run_began() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let (mut f, start) = open_append(&path).unwrap();
        assert_eq!(start, 0);
        writeln!(f, "listening on 1").unwrap();
        let (mut f, start) = open_append(&path).unwrap();
        writeln!(f, "listening on 2").unwrap();
        assert_eq!(read_since(&path, start), "listening on 2\n");
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains("listening on 1"));
    }
}
