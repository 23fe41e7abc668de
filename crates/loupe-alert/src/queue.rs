//! The delivery queue and the alerting state, in their own SQLite file
//! (`DIR/alerts.sqlite`): a notification is written (and synced) before its
//! first attempt, so one accepted before a restart is delivered after it.
//! Alerts, silences and rules added through the API live here too, so a
//! restart neither re-sends a firing alert nor forgets a silence.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};

pub use loupe_model::alerting::{ChannelCounts, Delivery};

use crate::engine::{Alert, Notification};
use crate::error::Result;
use crate::rules::RuleSpec;
use crate::silence::Silence;

pub struct Queue {
    conn: Mutex<Connection>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    channel TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    next_attempt REAL NOT NULL,
    delivered REAL,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (channel, state, seq);
CREATE TABLE IF NOT EXISTS alerts (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_rules (name TEXT PRIMARY KEY, body TEXT NOT NULL);
";

/// Delivered and given-up notifications are kept this long (seconds) for
/// the API, then deleted.
const DONE_KEPT_S: f64 = 7.0 * 86400.0;

impl Queue {
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path)?;
        // FULL: a queued notification survives power loss, not just a crash.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Queues notifications durably, in one transaction.
    pub fn enqueue(&self, items: &[Notification]) -> Result<()> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        for n in items {
            tx.execute(
                "INSERT INTO notifications (id, channel, body, created, next_attempt) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![n.id, n.channel, serde_json::to_string(n)?, n.created],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The oldest pending notification of `channel`, if it is due at
    /// `now`. Oldest first: a channel's messages arrive in order, and a
    /// failing one waits its backoff without skipping ahead.
    pub fn next_due(&self, channel: &str, now: f64) -> Result<Option<(i64, u32, Notification)>> {
        let c = self.conn.lock();
        let row: Option<(i64, u32, f64, String)> = c
            .query_row(
                "SELECT seq, attempts, next_attempt, body FROM notifications WHERE channel = ?1 AND state = 'pending' ORDER BY seq LIMIT 1",
                params![channel],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        match row {
            Some((seq, attempts, next, body)) if next <= now => {
                match serde_json::from_str(&body) {
                    Ok(n) => Ok(Some((seq, attempts, n))),
                    Err(e) => {
                        // A row that cannot be read must not block the
                        // channel behind it: give it up, visibly.
                        c.execute(
                            "UPDATE notifications SET state = 'failed', last_error = ?2 WHERE seq = ?1",
                            params![seq, format!("undecodable: {e}")],
                        )?;
                        Err(e.into())
                    }
                }
            }
            _ => Ok(None),
        }
    }

    /// Channels with pending notifications.
    pub fn pending_channels(&self) -> Result<Vec<String>> {
        let c = self.conn.lock();
        let mut s =
            c.prepare("SELECT DISTINCT channel FROM notifications WHERE state = 'pending'")?;
        let out = s
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(out)
    }

    pub fn mark_delivered(&self, seq: i64, now: f64) -> Result<()> {
        self.conn.lock().execute(
            "UPDATE notifications SET state = 'delivered', delivered = ?2, attempts = attempts + 1, last_error = NULL WHERE seq = ?1",
            params![seq, now],
        )?;
        Ok(())
    }

    /// Records a failed attempt; `next_attempt: None` gives up.
    pub fn mark_failed(&self, seq: i64, error: &str, next_attempt: Option<f64>) -> Result<()> {
        let c = self.conn.lock();
        match next_attempt {
            Some(t) => c.execute(
                "UPDATE notifications SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3 WHERE seq = ?1",
                params![seq, t, error],
            )?,
            None => c.execute(
                "UPDATE notifications SET attempts = attempts + 1, state = 'failed', last_error = ?2 WHERE seq = ?1",
                params![seq, error],
            )?,
        };
        Ok(())
    }

    /// Deletes finished notifications older than a week.
    pub fn prune(&self, now: f64) -> Result<()> {
        self.conn.lock().execute(
            "DELETE FROM notifications WHERE state != 'pending' AND created < ?1",
            params![now - DONE_KEPT_S],
        )?;
        Ok(())
    }

    /// The most recent notifications, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Delivery>> {
        let c = self.conn.lock();
        let mut s = c.prepare(
            "SELECT seq, id, channel, state, attempts, created, next_attempt, delivered, last_error, body FROM notifications ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = s.query_map(params![limit as i64], |r| {
            let body: String = r.get(9)?;
            let title = serde_json::from_str::<Notification>(&body)
                .map(|n| n.title)
                .unwrap_or_default();
            Ok(Delivery {
                seq: r.get(0)?,
                id: r.get(1)?,
                channel: r.get(2)?,
                state: r.get(3)?,
                attempts: r.get(4)?,
                created: r.get(5)?,
                next_attempt: r.get(6)?,
                delivered: r.get(7)?,
                last_error: r.get(8)?,
                title,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn counts(&self) -> Result<Vec<(String, ChannelCounts)>> {
        let c = self.conn.lock();
        let mut s = c.prepare("SELECT channel, state, COUNT(*) FROM notifications GROUP BY channel, state ORDER BY channel")?;
        let mut out: Vec<(String, ChannelCounts)> = Vec::new();
        let rows = s.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (ch, state, n) = row?;
            if out.last().map(|(c, _)| c != &ch).unwrap_or(true) {
                out.push((ch.clone(), ChannelCounts::default()));
            }
            if let Some((_, counts)) = out.last_mut() {
                let n = n.max(0) as u64;
                match state.as_str() {
                    "pending" => counts.pending = n,
                    "delivered" => counts.delivered = n,
                    _ => counts.failed += n,
                }
            }
        }
        Ok(out)
    }

    /// Queues `notes` and stores the alert state that marks them sent, in
    /// one transaction: after a crash either both are on disk (the
    /// notification goes out once) or neither (the next evaluation makes it
    /// again) — never one sent twice or lost.
    pub fn commit(
        &self,
        notes: &[Notification],
        alerts: &[&Alert],
        silences: &[Silence],
    ) -> Result<()> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        for n in notes {
            tx.execute(
                "INSERT INTO notifications (id, channel, body, created, next_attempt) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![n.id, n.channel, serde_json::to_string(n)?, n.created],
            )?;
        }
        write_state(&tx, alerts, silences)?;
        tx.commit()?;
        Ok(())
    }

    /// Replaces the stored alerts and silences with these.
    pub fn save_state(&self, alerts: &[&Alert], silences: &[Silence]) -> Result<()> {
        let mut c = self.conn.lock();
        let tx = c.transaction()?;
        write_state(&tx, alerts, silences)?;
        tx.commit()?;
        Ok(())
    }

    /// The stored alerts and silences; rows that no longer decode are
    /// skipped (a newer version's format must not stop the server).
    pub fn load_state(&self) -> Result<(Vec<Alert>, Vec<Silence>)> {
        let c = self.conn.lock();
        let read = |table: &str| -> Result<Vec<String>> {
            let mut s = c.prepare(&format!("SELECT body FROM {table}"))?;
            let out = s
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(out)
        };
        let alerts = read("alerts")?
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        let silences = read("silences")?
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect();
        Ok((alerts, silences))
    }

    pub fn save_rule(&self, spec: &RuleSpec) -> Result<()> {
        self.conn.lock().execute(
            "INSERT OR REPLACE INTO api_rules (name, body) VALUES (?1, ?2)",
            params![spec.name, serde_json::to_string(spec)?],
        )?;
        Ok(())
    }

    pub fn delete_rule(&self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .lock()
            .execute("DELETE FROM api_rules WHERE name = ?1", params![name])?;
        Ok(n > 0)
    }

    pub fn load_rules(&self) -> Result<Vec<RuleSpec>> {
        let c = self.conn.lock();
        let mut s = c.prepare("SELECT body FROM api_rules ORDER BY name")?;
        let bodies = s
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(bodies
            .iter()
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }
}

fn write_state(
    tx: &rusqlite::Transaction<'_>,
    alerts: &[&Alert],
    silences: &[Silence],
) -> Result<()> {
    tx.execute("DELETE FROM alerts", [])?;
    for a in alerts {
        tx.execute(
            "INSERT INTO alerts (id, body) VALUES (?1, ?2)",
            params![a.id, serde_json::to_string(a)?],
        )?;
    }
    tx.execute("DELETE FROM silences", [])?;
    for s in silences {
        tx.execute(
            "INSERT INTO silences (id, body) VALUES (?1, ?2)",
            params![s.id, serde_json::to_string(s)?],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn note(id: &str, channel: &str) -> Notification {
        Notification {
            id: id.into(),
            channel: channel.into(),
            group: BTreeMap::new(),
            status: "firing".into(),
            title: format!("t {id}"),
            alerts: vec![],
            created: 10.0,
            chart: None,
        }
    }

    #[test]
    fn survives_reopen_and_keeps_order_per_channel() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alerts.sqlite");
        {
            let q = Queue::open(&p).unwrap();
            q.enqueue(&[note("a", "hook"), note("b", "hook"), note("c", "mail")])
                .unwrap();
        }
        let q = Queue::open(&p).unwrap();
        let (seq, attempts, n) = q.next_due("hook", 10.0).unwrap().unwrap();
        assert_eq!((n.id.as_str(), attempts), ("a", 0));
        // A failure backs "a" off; "b" waits behind it, "mail" does not.
        q.mark_failed(seq, "connection refused", Some(20.0))
            .unwrap();
        assert!(q.next_due("hook", 15.0).unwrap().is_none());
        assert_eq!(q.next_due("mail", 15.0).unwrap().unwrap().2.id, "c");
        let (seq, attempts, _) = q.next_due("hook", 20.0).unwrap().unwrap();
        assert_eq!(attempts, 1);
        q.mark_delivered(seq, 21.0).unwrap();
        assert_eq!(q.next_due("hook", 21.0).unwrap().unwrap().2.id, "b");
        let counts = q.counts().unwrap();
        assert_eq!(counts[0].0, "hook");
        assert_eq!(
            counts[0].1,
            ChannelCounts {
                pending: 1,
                delivered: 1,
                failed: 0
            }
        );
        let recent = q.recent(10).unwrap();
        assert_eq!(recent.len(), 3);
        assert_eq!(recent[2].last_error, None);
        assert_eq!(q.pending_channels().unwrap().len(), 2);
    }

    #[test]
    fn state_and_rules_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::open(&dir.path().join("a.sqlite")).unwrap();
        let s = Silence {
            id: "s".into(),
            matchers: BTreeMap::from([("run".into(), "r".into())]),
            starts: 0.0,
            ends: 1.0,
            comment: String::new(),
            created_by: None,
        };
        q.save_state(&[], std::slice::from_ref(&s)).unwrap();
        assert_eq!(q.load_state().unwrap().1, vec![s]);
        let spec = RuleSpec {
            name: "x".into(),
            kind: "absence".into(),
            for_: Some("10m".into()),
            ..Default::default()
        };
        q.save_rule(&spec).unwrap();
        assert_eq!(q.load_rules().unwrap(), vec![spec]);
        assert!(q.delete_rule("x").unwrap() && !q.delete_rule("x").unwrap());
    }
}
