//! Reading and writing files that come from outside, safely: every reader refuses special files (FIFOs, devices,
//! sockets, folders) by type before opening them, caps what it reads, and names the file; every writer writes to
//! a temporary name beside the target and renames it when complete, and refuses a target that is one of the
//! inputs (the same path, a link to it, a hard link).

use crate::error::{Error, Result};
use std::fs::{File, Metadata};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Caps on files the crate reads whole (the tensors of checkpoints are read through their own checks).
pub mod caps {
    /// Parameters files (YAML).
    pub const PARAMS: u64 = 1 << 20;
    /// JSON sidecars: `config.json`, `preprocessor_config.json`, `*.index.json`, linear-head metadata.
    pub const JSON: u64 = 16 << 20;
    /// Label files (one class name per line, or JSON).
    pub const LABELS: u64 = 4 << 20;
    /// One image file.
    pub const IMAGE: u64 = 256 << 20;
}

/// What kind of file a path is, in words, for errors ("a FIFO", "a folder").
pub fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

fn not_regular(path: &Path, what: &str, meta: &Metadata) -> Error {
    Error::file(path, format!("{what} must be a regular file, this is {}", kind_of(meta)))
}

/// Checks that `path` is a regular file (following links) without opening it; `what` names the role ("params
/// file", "checkpoint"). A missing path is an I/O error naming it; a special file is refused by type.
pub fn check_regular(path: &Path, what: &str) -> Result<Metadata> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, what, &meta));
    }
    Ok(meta)
}

/// Opens a regular file for reading: refused by type before opening (opening a FIFO would block), and checked
/// again on the opened handle.
pub fn open_regular(path: &Path, what: &str) -> Result<File> {
    check_regular(path, what)?;
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(not_regular(path, what, &meta));
    }
    Ok(file)
}

/// Reads a whole regular file of at most `cap` bytes; a larger one is refused naming its size and the cap.
pub fn read_capped(path: &Path, cap: u64, what: &str) -> Result<Vec<u8>> {
    let file = open_regular(path, what)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > cap {
        return Err(too_large(path, what, len, cap));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow while it is read: never read more than the cap.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > cap {
        return Err(too_large(path, what, bytes.len() as u64, cap));
    }
    Ok(bytes)
}

/// [`read_capped`] as UTF-8 text; invalid UTF-8 is refused naming the byte offset.
pub fn read_text_capped(path: &Path, cap: u64, what: &str) -> Result<String> {
    let bytes = read_capped(path, cap, what)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::file(path, format!("{what} is not UTF-8 text (byte offset {})", e.utf8_error().valid_up_to()))
    })
}

fn too_large(path: &Path, what: &str, len: u64, cap: u64) -> Error {
    Error::file(path, format!("{what} of {len} bytes is larger than the {cap}-byte limit"))
}

/// True when `a` and `b` are the same file or folder (same device and inode: the same path, a symbolic link to
/// it, a hard link). False when either does not exist.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Refuses an output `target` that is one of `inputs` (see [`same_file`]); called before anything is opened for
/// writing. `what` names the output ("--output", "--files").
pub fn refuse_overwrite(target: &Path, inputs: &[&Path], what: &str) -> Result<()> {
    for input in inputs {
        if same_file(target, input) {
            let message = format!("{what} is the input {}: refusing to overwrite an input", input.display());
            return Err(Error::file(target, message));
        }
    }
    Ok(())
}

/// A file written under a temporary name beside its target (`.NAME.tmp-PID`) and renamed onto the target by
/// [`AtomicFile::commit`]; dropped uncommitted, the temporary file is removed. A reader never sees a half-written
/// target, and a failed write never destroys what the target held.
pub struct AtomicFile {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file (refusing to follow or reuse an existing one).
    pub fn create(target: &Path) -> Result<Self> {
        let name = target.file_name().ok_or_else(|| Error::file(target, "not a file name"))?.to_string_lossy();
        let temp = target.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let file =
            std::fs::OpenOptions::new().write(true).create_new(true).open(&temp).map_err(|e| Error::io(&temp, e))?;
        Ok(AtomicFile { file: Some(file), temp, target: target.to_path_buf() })
    }

    /// The temporary path being written.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The path the file gets on commit.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("AtomicFile used after commit")
    }

    /// Takes the temporary file's handle (for writers that own it, e.g. a bag writer); [`AtomicFile::commit`]
    /// still renames it.
    pub fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// Flushes, syncs and renames the temporary file onto the target.
    pub fn commit(mut self) -> Result<PathBuf> {
        if let Some(mut f) = self.file.take() {
            f.flush().map_err(|e| Error::io(&self.temp, e))?;
            f.sync_all().map_err(|e| Error::io(&self.temp, e))?;
        }
        std::fs::rename(&self.temp, &self.target).map_err(|e| Error::io(&self.target, e))?;
        self.temp = PathBuf::new();
        Ok(self.target.clone())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.temp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `target` through an [`AtomicFile`].
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.file().write_all(bytes).map_err(|e| Error::io(f.temp_path(), e))?;
    f.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dinoseg-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn refuses_fifo_and_folder_by_type_without_blocking() {
        let d = tmp("fifo");
        let fifo = d.join("p.yaml");
        let st = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(st.success());
        let e = read_capped(&fifo, 10, "params file").unwrap_err().to_string();
        assert!(e.contains("p.yaml") && e.contains("a FIFO"), "{e}");
        let e = read_capped(&d, 10, "params file").unwrap_err().to_string();
        assert!(e.contains("a folder"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 10, "label file").unwrap_err().to_string();
        assert!(e.contains("character device"), "{e}");
    }

    #[test]
    fn caps_size_and_names_it() {
        let d = tmp("cap");
        let f = d.join("big.json");
        std::fs::write(&f, vec![b' '; 100]).unwrap();
        assert_eq!(read_capped(&f, 100, "x").unwrap().len(), 100);
        let e = read_capped(&f, 99, "config").unwrap_err().to_string();
        assert!(e.contains("big.json") && e.contains("100 bytes") && e.contains("99-byte"), "{e}");
        std::fs::write(&f, [b'a', 0xff, b'b']).unwrap();
        let e = read_text_capped(&f, 10, "config").unwrap_err().to_string();
        assert!(e.contains("byte offset 1"), "{e}");
    }

    #[test]
    fn same_file_sees_links_and_atomic_write_replaces_whole() {
        let d = tmp("same");
        let a = d.join("a.mcap");
        std::fs::write(&a, b"input").unwrap();
        let link = d.join("l.mcap");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let hard = d.join("h.mcap");
        std::fs::hard_link(&a, &hard).unwrap();
        assert!(same_file(&a, &link) && same_file(&a, &hard) && same_file(&d, &d.join(".")));
        assert!(refuse_overwrite(&link, &[&a], "--output").is_err());
        assert!(refuse_overwrite(&d.join("new.mcap"), &[&a], "--output").is_ok());
        {
            let mut f = AtomicFile::create(&a).unwrap();
            f.file().write_all(b"half").unwrap();
            // dropped uncommitted: the target keeps what it held, the temporary file is gone
        }
        assert_eq!(std::fs::read(&a).unwrap(), b"input");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 3);
        let out = d.join("out.bin");
        write_atomic(&out, b"done").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"done");
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 4);
    }
}
