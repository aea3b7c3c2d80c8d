//! The redb files this process has open: one [`OpenFile`] per path, shared by every backend
//! (namespace) on it, because redb locks a file to one opener.
//!
//! A file leaves the registry only once redb has let go of it. The last handle can be dropped
//! on any thread (a commit finishing on a blocking thread, say) while another thread opens the
//! same path; that opener waits for the release instead of failing with "already open".
//! Not the tables or what is in them: the crate root and `expiry` create and read those.

use crate::expiry::index_existing_deadlines;
use crate::{ITEMS, KEYS, db_error};
use redb::Database as Redb;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::{Mutex, Weak};
use std::time::Duration;
use storage_core::{Error, Result};

/// How long an opener waits for this process to finish closing the same file.
const CLOSING_WAIT: Duration = Duration::from_secs(10);

/// Paths open in this process; an entry whose handle is gone is a file still being closed.
static OPEN: Mutex<Vec<(PathBuf, Weak<OpenFile>)>> = Mutex::new(Vec::new());

/// An open redb file, shared by the backends on it.
#[derive(Debug)]
pub(crate) struct OpenFile {
    db: Option<Redb>,
    path: PathBuf,
}

impl Deref for OpenFile {
    type Target = Redb;

    fn deref(&self) -> &Redb {
        // Only `drop` takes it out.
        self.db
            .as_ref()
            .expect("an open file holds its database until dropped")
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // Release the file first, then let openers of this path go ahead.
        drop(self.db.take());
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|(p, w)| p != &self.path || w.strong_count() > 0);
    }
}

/// The file at `path`, opened (and its tables created) if no backend of this process has it.
pub(crate) fn open_file(path: &Path) -> Result<Arc<OpenFile>> {
    let started = std::time::Instant::now();
    loop {
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        match open.iter().find(|(p, _)| p == path) {
            Some((_, handle)) => {
                if let Some(file) = handle.upgrade() {
                    return Ok(file);
                }
                drop(open);
                if started.elapsed() > CLOSING_WAIT {
                    return Err(Error::connection(format!(
                        "{} is still being closed by this process",
                        path.display()
                    )));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None => {
                let file = Arc::new(OpenFile {
                    db: Some(create(path)?),
                    path: path.to_path_buf(),
                });
                open.push((path.to_path_buf(), Arc::downgrade(&file)));
                return Ok(file);
            }
        }
    }
}

fn create(path: &Path) -> Result<Redb> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::connection(format!("cannot create directory {}: {e}", parent.display()))
        })?;
    }
    let db = Redb::create(path).map_err(|e| {
        Error::config(format!(
            "cannot open {} as a redb database: {e}",
            path.display()
        ))
    })?;
    let tx = db
        .begin_write()
        .map_err(|e| db_error(e, "creating tables"))?;
    tx.open_table(KEYS)
        .map_err(|e| db_error(e, "creating tables"))?;
    tx.open_table(ITEMS)
        .map_err(|e| db_error(e, "creating tables"))?;
    index_existing_deadlines(&tx)?;
    crate::changes::create_tables(&tx)?;
    tx.commit().map_err(|e| db_error(e, "creating tables"))?;
    Ok(db)
}
