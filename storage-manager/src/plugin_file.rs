//! Checks on a plugin file before the dynamic loader maps it: what it is, who may have written
//! it, and whether its ELF image lies inside the file. Not the declaration check (the plugin's
//! ABI, versions and layouts): that is `plugins.rs`, once the library is loaded.
//!
//! Each check stands for a way loading went wrong: a FIFO blocked the loader forever; a copy cut
//! short (a deploy writing files in place) was mapped and crashed the host with SIGBUS when the
//! loader touched a page past the end; a file that another user could write was run in this
//! process without a word. As OpenSSH does for keys, a file or directory writable by group or
//! others, or owned by a user other than root and this one, is refused; a directory with the
//! sticky bit (`/tmp`) is allowed, since there only a file's owner can replace it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use storage_core::{Error, Result};

/// Checks the file at `path` and returns the path the loader should open (its canonical form,
/// so the file checked is the file loaded, whatever symbolic links led to it).
pub(crate) fn check_plugin_file(path: &Path) -> Result<PathBuf> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::plugin(format!("plugin library not found: {shown}")),
        _ => Error::plugin(format!("plugin library {shown}: cannot read it: {e}")),
    })?;
    if !meta.is_file() {
        return Err(Error::plugin(format!(
            "plugin library {shown} is {}, not a regular file; refusing to load it",
            file_kind(&meta)
        )));
    }
    let real = std::fs::canonicalize(path)
        .map_err(|e| Error::plugin(format!("plugin library {shown}: cannot resolve it: {e}")))?;
    check_owner_and_mode(&real, &meta, "plugin library")?;
    if let Some(dir) = real.parent() {
        let dir_meta = std::fs::metadata(dir).map_err(|e| {
            Error::plugin(format!(
                "plugin library {shown}: cannot read its directory {}: {e}",
                dir.display()
            ))
        })?;
        check_owner_and_mode(dir, &dir_meta, "the directory of plugin library")?;
    }
    // Read, not mapped: a file cut short must fail here, as an error, not as a SIGBUS later.
    let image = std::fs::read(&real)
        .map_err(|e| Error::plugin(format!("plugin library {shown}: cannot read it: {e}")))?;
    check_elf_image(&image).map_err(|why| {
        Error::plugin(format!("plugin library {shown} {why}; refusing to load it"))
    })?;
    Ok(real)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

fn check_owner_and_mode(path: &Path, meta: &std::fs::Metadata, what: &str) -> Result<()> {
    let mode = meta.permissions().mode();
    let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky_dir {
        return Err(Error::plugin(format!(
            "{what} {} is writable by {} (mode {:o}): whoever can write it could run code in this process; \
             make it writable by its owner only (chmod go-w)",
            path.display(),
            if mode & 0o002 != 0 {
                "others"
            } else {
                "its group"
            },
            mode & 0o7777
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let owner = meta.uid();
    if owner != 0 && owner != me {
        return Err(Error::plugin(format!(
            "{what} {} is owned by user {owner}, neither root nor this process's user ({me}); refusing to load it",
            path.display()
        )));
    }
    Ok(())
}

/// Whether `image` is a complete ELF shared object for this machine: headers that parse, and
/// every segment the loader maps lying inside the file.
fn check_elf_image(image: &[u8]) -> std::result::Result<(), String> {
    use object::read::elf::{FileHeader, ProgramHeader};
    use object::{Endianness, elf};
    let kind = object::FileKind::parse(image).map_err(|_| {
        format!(
            "is not an ELF shared library ({} bytes, no ELF header)",
            image.len()
        )
    })?;
    fn segments<H: FileHeader<Endian = Endianness>>(
        image: &[u8],
    ) -> std::result::Result<(), String> {
        let header = H::parse(image).map_err(|e| format!("has a broken ELF header ({e})"))?;
        let endian = header
            .endian()
            .map_err(|e| format!("has a broken ELF header ({e})"))?;
        if header.e_type(endian) != elf::ET_DYN {
            return Err("is an ELF file but not a shared library".into());
        }
        let phdrs = header.program_headers(endian, image).map_err(|e| {
            format!(
                "is cut short or damaged: its program headers lie outside the file ({e}; {} bytes)",
                image.len()
            )
        })?;
        if phdrs.is_empty() {
            return Err("is an ELF file without loadable segments".into());
        }
        for ph in phdrs {
            let (offset, size): (u64, u64) =
                (ph.p_offset(endian).into(), ph.p_filesz(endian).into());
            let end = offset.saturating_add(size);
            if matches!(ph.p_type(endian), elf::PT_LOAD | elf::PT_DYNAMIC)
                && end > image.len() as u64
            {
                return Err(format!(
                    "is cut short: a segment the loader maps ends at byte {end}, but the file has {} bytes \
                     (a copy still being written, or truncated)",
                    image.len()
                ));
            }
        }
        Ok(())
    }
    match kind {
        object::FileKind::Elf64 => segments::<elf::FileHeader64<Endianness>>(image),
        object::FileKind::Elf32 => segments::<elf::FileHeader32<Endianness>>(image),
        _ => Err("is not an ELF shared library".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_that_are_not_complete_shared_objects_are_named() {
        assert!(check_elf_image(b"").unwrap_err().contains("no ELF header"));
        assert!(
            check_elf_image(b"#!/bin/sh\necho hi\n")
                .unwrap_err()
                .contains("not an ELF")
        );
        // This test binary is an ELF executable (or a PIE, which is ET_DYN): cut to 4 KiB it
        // must be refused either way.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let cut = &me[..4096.min(me.len())];
        assert!(check_elf_image(cut).is_err());
    }
}
