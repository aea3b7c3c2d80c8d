//! The PostgreSQL baseline: tokio-postgres through a bb8 pool, running the backend's own
//! statements, each prepared once when a connection opens (as the backend prepares each once
//! per connection), without the project's layers. Not the backend (that is `storage-postgres`).

use super::{decode, encode, fail, fresh_version};
use crate::Subject;
use serde_json::Value;
use std::collections::HashMap;
use storage_core::Result;
use tokio_postgres::{Client, NoTls, Statement};

/// A connection with every statement prepared.
pub struct Prepared {
    client: Client,
    stmts: HashMap<&'static str, Statement>,
}

/// Opens connections and prepares the statements on each.
pub struct Manager {
    config: tokio_postgres::Config,
    sql: Vec<(&'static str, String)>,
}

impl bb8::ManageConnection for Manager {
    type Connection = Prepared;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> std::result::Result<Prepared, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(connection);
        let mut stmts = HashMap::new();
        for (name, sql) in &self.sql {
            stmts.insert(*name, client.prepare(sql).await?);
        }
        Ok(Prepared { client, stmts })
    }

    async fn is_valid(
        &self,
        conn: &mut Prepared,
    ) -> std::result::Result<(), tokio_postgres::Error> {
        conn.client.simple_query("").await.map(drop)
    }

    fn has_broken(&self, conn: &mut Prepared) -> bool {
        conn.client.is_closed()
    }
}

/// tokio-postgres through a bb8 pool of prepared connections.
pub struct PostgresBaseline {
    pool: bb8::Pool<Manager>,
    ns: String,
}

impl PostgresBaseline {
    pub async fn open(url: &str, ns: &str, max: u32) -> Self {
        use storage_postgres::sql;
        let fill = |t: &str| {
            t.replace("{kv}", "storage_kv")
                .replace("{items}", "storage_list_items")
                .replace("{now}", sql::NOW_MS)
                .replace("{generation}", sql::GENERATION)
        };
        let manager = Manager {
            config: url.parse().unwrap(),
            sql: vec![
                ("get", fill(sql::GET)),
                ("set", fill(sql::SET)),
                ("mget", fill(sql::MGET)),
                ("mset", fill(sql::MSET)),
                ("delete_items", fill(sql::DELETE_ITEMS)),
                ("append", fill(sql::APPEND)),
                ("range", fill(sql::RANGE)),
                ("keys", fill(sql::KEYS_RANGE)),
            ],
        };
        let pool = bb8::Pool::builder()
            .max_size(max)
            .test_on_check_out(false)
            .build(manager)
            .await
            .unwrap();
        PostgresBaseline {
            pool,
            ns: ns.to_string(),
        }
    }
}

impl Subject for PostgresBaseline {
    async fn get(&self, key: String) -> Result<()> {
        let conn = self.pool.get().await.map_err(fail)?;
        let row = conn
            .client
            .query_opt(&conn.stmts["get"], &[&self.ns, &key])
            .await
            .map_err(fail)?;
        row.map(|r| decode(r.get::<_, &str>(1).as_bytes()))
            .transpose()
            .map(drop)
    }
    async fn set(&self, key: String, value: Value) -> Result<()> {
        let conn = self.pool.get().await.map_err(fail)?;
        conn.client
            .query_one(
                &conn.stmts["set"],
                // The same statement as the project's, with a new version as every write
                // has (the schema's trigger files a change when the version moves).
                &[
                    &self.ns,
                    &key,
                    &encode(&value),
                    &None::<i64>,
                    &fresh_version(),
                ],
            )
            .await
            .map_err(fail)?;
        Ok(())
    }
    async fn mget(&self, keys: Vec<String>) -> Result<()> {
        let conn = self.pool.get().await.map_err(fail)?;
        for r in conn
            .client
            .query(&conn.stmts["mget"], &[&self.ns, &keys])
            .await
            .map_err(fail)?
        {
            decode(r.get::<_, &str>(2).as_bytes())?;
        }
        Ok(())
    }
    async fn mset(&self, entries: Vec<(String, Value)>) -> Result<()> {
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        let values: Vec<String> = entries.iter().map(|(_, v)| encode(v)).collect();
        let ttls: Vec<Option<i64>> = vec![None; entries.len()];
        // New versions, as the project writes (the `mset100` rows rewrite the same 5,000
        // values: with a fixed version the trigger filed nothing, and the project read 0.70x
        // of this baseline for the change log it pays).
        let versions: Vec<i64> = entries.iter().map(|_| fresh_version()).collect();
        let mut conn = self.pool.get().await.map_err(fail)?;
        let Prepared { client, stmts } = &mut *conn;
        let tx = client.transaction().await.map_err(fail)?;
        let lists = tx
            .query(
                &stmts["mset"],
                &[&self.ns, &keys, &values, &ttls, &versions],
            )
            .await
            .map_err(fail)?;
        for row in lists {
            let key: &str = row.get(0);
            tx.execute(&stmts["delete_items"], &[&self.ns, &key])
                .await
                .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)
    }
    async fn append(&self, key: String, value: Value) -> Result<()> {
        let conn = self.pool.get().await.map_err(fail)?;
        conn.client
            .query_opt(&conn.stmts["append"], &[&self.ns, &key, &encode(&value)])
            .await
            .map_err(fail)?;
        Ok(())
    }
    async fn tail20(&self, key: String) -> Result<()> {
        let conn = self.pool.get().await.map_err(fail)?;
        for r in conn
            .client
            .query(&conn.stmts["range"], &[&self.ns, &key, &-20i64, &-1i64])
            .await
            .map_err(fail)?
        {
            if let Some(t) = r.get::<_, Option<&str>>(2) {
                decode(t.as_bytes())?;
            }
        }
        Ok(())
    }
    async fn keys_prefix(&self) -> Result<()> {
        let conn = self.pool.get().await.map_err(fail)?;
        let rows = conn
            .client
            .query(&conn.stmts["keys"], &[&self.ns, &"p:", &"p;"])
            .await
            .map_err(fail)?;
        assert_eq!(rows.len(), 1000);
        Ok(())
    }
}
