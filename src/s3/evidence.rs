//! The evidence index (spec section 8): per office, per reporter folder (shown by public
//! display name, never by the `elector_id` the folder is named after) and per sub-folder,
//! how many objects, how many bytes, and the latest upload, read from the bucket with the
//! operator's key. Objects themselves are never read. Listings are cached 60 s and served
//! stale while one refresh per office (at most four in all) runs in the background.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::clock::Clock;
use crate::domain::time::{self, Timestamp};

const FRESH_SECS: i64 = 60;
const LISTINGS_AT_ONCE: usize = 4;

/// One object as listed: its key, size and upload time.
#[derive(Clone, Debug)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub last_modified: String,
}

#[derive(Default)]
struct Tally {
    objects: u64,
    bytes: u64,
    latest: Option<Timestamp>,
}

impl Tally {
    fn add(&mut self, size: u64, at: Option<Timestamp>) {
        self.objects += 1;
        self.bytes += size;
        self.latest = self.latest.max(at);
    }

    fn json(&self) -> Value {
        json!({"objects": self.objects, "bytes": self.bytes, "latest_upload": self.latest.map(time::format)})
    }
}

/// The index body of one office from its objects. `office_prefix` is
/// `{s3.prefix}{office}/`; `names` maps an `elector_id` to its display name (folders of
/// unknown sources are counted under "unknown").
pub fn summarize(
    office: &str,
    office_prefix: &str,
    objects: &[Listed],
    names: &HashMap<String, String>,
    listed_at: Timestamp,
) -> Value {
    let mut sources: BTreeMap<String, (Tally, BTreeMap<String, Tally>)> = BTreeMap::new();
    for o in objects {
        let Some(rest) = o.key.strip_prefix(office_prefix) else { continue };
        let (folder, inside) = rest.split_once('/').unwrap_or((rest, ""));
        let name = folder
            .strip_prefix("source-")
            .and_then(|elector| names.get(elector))
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned());
        let sub = match inside.split_once('/') {
            Some((sub, _)) => format!("{sub}/"),
            None => "./".to_owned(),
        };
        let at = time::parse(&o.last_modified);
        let (total, subs) = sources.entry(name).or_default();
        total.add(o.size, at);
        subs.entry(sub).or_default().add(o.size, at);
    }
    let sources: Vec<Value> = sources
        .into_iter()
        .map(|(name, (total, subs))| {
            let mut v = total.json();
            v["source"] = json!(name);
            v["folders"] = subs
                .into_iter()
                .map(|(folder, t)| {
                    let mut f = t.json();
                    f["folder"] = json!(folder);
                    f
                })
                .collect();
            v
        })
        .collect();
    json!({"poll_office_id": office, "listed_at": time::format(listed_at), "sources": sources})
}

/// The cache of office listings.
pub struct Evidence {
    clock: Arc<dyn Clock>,
    listings: Mutex<HashMap<String, (Timestamp, Value)>>,
    /// One listing per office at a time.
    office_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// At most this many listings at once, in all.
    permits: Arc<Semaphore>,
}

impl Evidence {
    pub fn new(clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Evidence {
            clock,
            listings: Mutex::default(),
            office_locks: Mutex::default(),
            permits: Arc::new(Semaphore::new(LISTINGS_AT_ONCE)),
        })
    }

    fn office_lock(&self, office: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.office_locks.lock().entry(office.to_owned()).or_default().clone()
    }

    /// The office's index: fresh from the cache, stale while a refresh runs, or listed now
    /// when there is none yet.
    pub async fn get<F, Fut>(self: &Arc<Self>, office: &str, list: F) -> Result<Value, String>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let cached = self.listings.lock().get(office).cloned();
        if let Some((at, body)) = cached {
            if self.clock.now() - at >= chrono::Duration::seconds(FRESH_SECS) {
                self.refresh_in_background(office, list);
            }
            return Ok(body);
        }
        let lock = self.office_lock(office);
        let _listing = lock.lock().await;
        if let Some((_, body)) = self.listings.lock().get(office).cloned() {
            return Ok(body);
        }
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let body = list().await?;
        self.listings.lock().insert(office.to_owned(), (self.clock.now(), body.clone()));
        Ok(body)
    }

    fn refresh_in_background<F, Fut>(self: &Arc<Self>, office: &str, list: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, String>> + Send + 'static,
    {
        let Ok(listing) = self.office_lock(office).try_lock_owned() else { return };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else { return };
        let this = self.clone();
        let office = office.to_owned();
        tokio::spawn(async move {
            match list().await {
                Ok(body) => {
                    this.listings.lock().insert(office, (this.clock.now(), body));
                }
                Err(e) => log::warn!("evidence listing of {office} failed: {e}"),
            }
            drop((listing, permit));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(key: &str, size: u64, at: &str) -> Listed {
        Listed { key: key.into(), size, last_modified: at.into() }
    }

    #[test]
    fn objects_are_counted_per_source_name_and_sub_folder() {
        let names =
            HashMap::from([("E-1".to_string(), "Awa N.".to_string()), ("E-2".to_string(), "source-2".to_string())]);
        let objects = [
            obj("m/PO-1/source-E-1/votes/vote-1-1-a.jpeg", 100, "2025-08-15T14:00:00.000Z"),
            obj("m/PO-1/source-E-1/votes/vote-2-2-a.jpeg", 50, "2025-08-15T15:00:00.000Z"),
            obj("m/PO-1/source-E-1/verbal_process/pv.jpeg", 7, "2025-08-15T13:00:00Z"),
            obj("m/PO-1/source-E-2/counting-proof/a.mp4", 1000, "2025-08-15T16:00:00Z"),
            obj("m/PO-1/source-E-9/x.jpeg", 1, "2025-08-15T16:00:00Z"),
            obj("m/PO-10/source-E-1/votes/other-office.jpeg", 1, "2025-08-15T16:00:00Z"),
        ];
        let at = time::parse("2025-08-15T17:00:00Z").unwrap();
        let v = summarize("PO-1", "m/PO-1/", &objects, &names, at);
        let text = v.to_string();
        assert!(!text.contains("E-1") && !text.contains("E-9"), "no elector_id is published: {text}");
        let sources = v["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 3);
        assert_eq!(sources[0]["source"], "Awa N.");
        assert_eq!(sources[0]["objects"], 3);
        assert_eq!(sources[0]["bytes"], 157);
        assert_eq!(sources[0]["latest_upload"], "2025-08-15T15:00:00Z");
        assert_eq!(
            sources[0]["folders"][0],
            json!({"folder": "verbal_process/", "objects": 1, "bytes": 7, "latest_upload": "2025-08-15T13:00:00Z"})
        );
        assert_eq!(sources[0]["folders"][1]["folder"], "votes/");
        assert_eq!(sources[1]["source"], "source-2");
        assert_eq!(sources[2]["source"], "unknown");
        assert_eq!(sources[2]["folders"][0]["folder"], "./");
        assert_eq!(v["listed_at"], "2025-08-15T17:00:00Z");
    }
}
