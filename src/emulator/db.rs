//! The emulator's state in SQLite (WAL): one table of entities, each stored as its wire JSON,
//! with its entity set, id and parent (the asset of a file or locator). A restarted emulator
//! finds every entity with the same id.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk under the data folder has no room for the write.
    #[error("the emulator's disk is full ({0}); free space in its data folder (--data-dir)")]
    DiskFull(rusqlite::Error),
    #[error("the data folder {path}: {source}")]
    DataFolder {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("an entity with id '{0}' already exists")]
    Duplicate(String),
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => Self::DiskFull(e),
            _ => Self::Sqlite(e),
        }
    }
}

/// One record of [`Db::insert_all`]: entity set, id, parent, body.
pub type NewEntity<'a> = (&'a str, &'a str, Option<&'a str>, serde_json::Value);

/// Entities by set; safe to share between request handlers.
pub struct Db {
    conn: Mutex<Connection>,
}

impl Db {
    /// Opens (or creates) `dir/media.sqlite`: the folder 0700, the database 0600 (it holds
    /// locator URLs), and deleted rows overwritten on disk (`secure_delete`), so nothing
    /// deleted stays readable in the file.
    pub fn open(dir: &Path) -> Result<Self, DbError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DbError::DataFolder { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        crate::config::restrict(dir, 0o700).map_err(io(dir))?;
        let path = dir.join("media.sqlite");
        let conn = Connection::open(&path)?;
        for f in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{f}", path.display()));
            if file.exists() {
                crate::config::restrict(&file, 0o600).map_err(io(&file))?;
            }
        }
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS entities (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 set_name TEXT NOT NULL,
                 id TEXT NOT NULL,
                 parent TEXT,
                 body TEXT NOT NULL,
                 UNIQUE (set_name, id)
             );
             CREATE INDEX IF NOT EXISTS entities_by_parent ON entities (set_name, parent);",
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(
        &self,
        set: &str,
        id: &str,
        parent: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<(), DbError> {
        insert_one(&self.conn(), set, id, parent, body)
    }

    /// Inserts every record or none (one transaction): a job with its tasks and outputs.
    pub fn insert_all(&self, records: &[NewEntity<'_>]) -> Result<(), DbError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for (set, id, parent, body) in records {
            insert_one(&tx, set, id, *parent, body)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get(&self, set: &str, id: &str) -> Result<Option<serde_json::Value>, DbError> {
        let text: Option<String> = self
            .conn()
            .prepare_cached("SELECT body FROM entities WHERE set_name = ?1 AND id = ?2")?
            .query_row(params![set, id], |r| r.get(0))
            .optional()?;
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Every entity of a set (optionally only a parent's), in creation order.
    pub fn list(&self, set: &str, parent: Option<&str>) -> Result<Vec<serde_json::Value>, DbError> {
        let conn = self.conn();
        let rows: Vec<String> = match parent {
            Some(p) => conn
                .prepare_cached(
                    "SELECT body FROM entities WHERE set_name = ?1 AND parent = ?2 ORDER BY seq",
                )?
                .query_map(params![set, p], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
            None => conn
                .prepare_cached("SELECT body FROM entities WHERE set_name = ?1 ORDER BY seq")?
                .query_map(params![set], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
        };
        Ok(rows
            .iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect())
    }

    pub fn count(&self, set: &str, parent: &str) -> Result<usize, DbError> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM entities WHERE set_name = ?1 AND parent = ?2",
            params![set, parent],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Replaces an entity's body; false when it does not exist.
    pub fn update(&self, set: &str, id: &str, body: &serde_json::Value) -> Result<bool, DbError> {
        let n = self.conn().execute(
            "UPDATE entities SET body = ?3 WHERE set_name = ?1 AND id = ?2",
            params![set, id, body.to_string()],
        )?;
        Ok(n > 0)
    }

    pub fn delete(&self, set: &str, id: &str) -> Result<bool, DbError> {
        let conn = self.conn();
        let n = conn.execute(
            "DELETE FROM entities WHERE set_name = ?1 AND id = ?2",
            params![set, id],
        )?;
        scrub(&conn);
        Ok(n > 0)
    }

    pub fn delete_children(&self, set: &str, parent: &str) -> Result<usize, DbError> {
        let conn = self.conn();
        let n = conn.execute(
            "DELETE FROM entities WHERE set_name = ?1 AND parent = ?2",
            params![set, parent],
        )?;
        scrub(&conn);
        Ok(n)
    }
}

fn insert_one(
    conn: &Connection,
    set: &str,
    id: &str,
    parent: Option<&str>,
    body: &serde_json::Value,
) -> Result<(), DbError> {
    let r = conn.execute(
        "INSERT INTO entities (set_name, id, parent, body) VALUES (?1, ?2, ?3, ?4)",
        params![set, id, parent, body.to_string()],
    );
    match r {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(DbError::Duplicate(id.to_string()))
        }
        r => r.map(|_| ()).map_err(DbError::from),
    }
}

/// After a delete: the write-ahead log still holds the deleted rows' old pages, so it is
/// checkpointed and emptied (the database file's freed pages are zeroed by `secure_delete`).
fn scrub(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::warn!(error = %e, "could not empty the write-ahead log after a delete");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Db::open(dir.path()).unwrap();
            db.insert("Assets", "a1", None, &serde_json::json!({"Id": "a1"}))
                .unwrap();
            db.insert("Files", "f1", Some("a1"), &serde_json::json!({"Id": "f1"}))
                .unwrap();
            assert!(matches!(
                db.insert("Assets", "a1", None, &serde_json::json!({})),
                Err(DbError::Duplicate(_))
            ));
        }
        let db = Db::open(dir.path()).unwrap();
        assert_eq!(db.get("Assets", "a1").unwrap().unwrap()["Id"], "a1");
        assert_eq!(db.list("Files", Some("a1")).unwrap().len(), 1);
        assert_eq!(db.delete_children("Files", "a1").unwrap(), 1);
        assert!(db.delete("Assets", "a1").unwrap());
        assert!(db.get("Assets", "a1").unwrap().is_none());
    }

    #[test]
    fn insert_all_writes_every_record_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        db.insert("Jobs", "j0", None, &serde_json::json!({}))
            .unwrap();
        let v = serde_json::json!({});
        let r = db.insert_all(&[
            ("Assets", "out", None, v.clone()),
            ("Tasks", "t1", Some("j0"), v.clone()),
            ("Jobs", "j0", None, v.clone()),
        ]);
        assert!(matches!(r, Err(DbError::Duplicate(_))));
        assert!(db.get("Assets", "out").unwrap().is_none());
        assert!(db.get("Tasks", "t1").unwrap().is_none());
        db.insert_all(&[("Assets", "out", None, v.clone())])
            .unwrap();
        assert!(db.get("Assets", "out").unwrap().is_some());
    }
}
