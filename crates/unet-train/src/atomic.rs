//! Atomic file writes: a run killed at any moment leaves either the old file
//! or the new one, never half of one.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// The temporary path a write goes through: beside the target (so the rename
/// stays on one file system), hidden, unique to this process.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file, synced, then renamed,
/// and the folder synced so that the rename itself survives a power loss;
/// on failure the temporary file is removed and `path` is untouched.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_with(path, |file| file.write_all(bytes))
}

/// [`write()`] of what `fill` writes, streamed: for files too large to hold
/// in memory first.
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temp = Temporary(temp_path(path));
    File::create(&temp.0)
        .and_then(|file| {
            let mut writer = BufWriter::new(file);
            fill(&mut writer)?;
            writer
                .into_inner()
                .map_err(|err| err.into_error())?
                .sync_all()
        })
        .and_then(|()| std::fs::rename(&temp.0, path))?;
    sync_folder(path)
}

/// A temporary file, removed when dropped unless renamed away first: on an
/// error, and on a panic inside `fill` that is caught further up.
struct Temporary(PathBuf);

impl Drop for Temporary {
    fn drop(&mut self) {
        if self.0.exists() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// Syncs the folder holding `path` (where a folder can be opened as a
/// file: Unix; elsewhere the rename is as durable as the system makes it).
/// File systems that cannot sync a folder (network shares, FUSE, WSL's 9p)
/// keep the file written: their refusal is not a failed write.
fn sync_folder(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        match File::open(parent).and_then(|folder| folder.sync_all()) {
            Err(err) if !cannot_sync_folders(&err) => return Err(err),
            _ => {}
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether `err`, from opening or syncing a folder, says the file system
/// does not do that (rather than that the disk failed).
fn cannot_sync_folders(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::InvalidInput | ErrorKind::Unsupported | ErrorKind::PermissionDenied
    )
}

/// Removes what writes of killed processes left in `dir`: the hidden
/// temporary files `.<name>.tmp-<process id>` of this module whose process
/// is no longer running (a write of another `unet` still running there is
/// left alone). Files it cannot remove stay; other files are not looked at.
pub fn remove_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(writer_process) else {
            continue;
        };
        if !running(id) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The process id in a temporary file name of this module,
/// `.<name>.tmp-<process id>`.
fn writer_process(name: &str) -> Option<u32> {
    let (_, id) = name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// Whether process `id` is running (this one included). Where that cannot
/// be asked (not Unix), every process counts as running.
fn running(id: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(id) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists and may be
        // signalled; nothing is sent, no memory is passed.
        let answer = unsafe { libc::kill(pid, 0) };
        answer == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = id;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_leave_no_temporaries() {
        let dir = std::env::temp_dir().join(format!("unet-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        write(&path, b"old").unwrap();
        write(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!temp_path(&path).exists());
        // A write that cannot happen (the target is a folder) leaves nothing behind.
        assert!(write(&dir, b"x").is_err());
        assert!(!temp_path(&dir).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_that_panics_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("unet-atomic-panic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.txt");
        let caught = std::panic::catch_unwind(|| {
            write_with(&path, |out| {
                out.write_all(b"half")?;
                panic!("a fault while writing")
            })
        });
        assert!(caught.is_err());
        assert!(!temp_path(&path).exists() && !path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_folder_that_cannot_be_synced_is_no_failure_but_a_disk_error_is() {
        let os = std::io::Error::from_raw_os_error;
        assert!(cannot_sync_folders(&os(libc::EINVAL)));
        assert!(cannot_sync_folders(&os(libc::EOPNOTSUPP)));
        assert!(!cannot_sync_folders(&os(libc::EIO)));
        assert!(!cannot_sync_folders(&os(libc::ENOSPC)));
    }

    #[test]
    fn leftovers_of_killed_writes_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("unet-leftovers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mine = temp_path(&dir.join("c.png"));
        // A process id above Linux's largest (2^22) is not running; 1 is.
        let files = [
            ".model.bpk.tmp-4194305",
            ".a_mask.png.tmp-4194999",
            ".running.png.tmp-1",
            "model.bpk",
            ".hidden",
            "notes.tmp-4194305",
            ".x.tmp-",
        ];
        for name in files {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        std::fs::write(&mine, b"x").unwrap();
        remove_leftovers(&dir);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = vec![
            ".hidden",
            ".running.png.tmp-1",
            ".x.tmp-",
            "model.bpk",
            "notes.tmp-4194305",
        ];
        expected.push(mine.file_name().unwrap().to_str().unwrap());
        expected.sort();
        assert_eq!(left, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
