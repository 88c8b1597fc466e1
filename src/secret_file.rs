//! Files only the server's account may read (the hashing secret, the log key): created
//! with mode 0600, never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `text` and a newline to a new file of mode 0600 (its folder created if needed);
/// fails if the file exists.
pub fn create(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    writeln!(f, "{text}")?;
    f.sync_all()
}
