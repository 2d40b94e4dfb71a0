//! The cached view of projects and admins that the intake and workers consult for
//! every submission.
//!
//! Entries live for a short TTL, so a hot key costs no database round trip and a
//! rotated key or a removed admin stops working within that TTL. When the database
//! is away, an expired entry is served anyway (stale-if-error): a short database
//! outage does not stop the intake from authenticating known keys.

use crate::projects::key_digest;
use crate::{Project, Store, StoreError};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a lookup may wait for the database when a stale entry could answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// Past this many entries a cache map is cleared rather than grown: lookups of
/// random keys must not become a memory leak.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
struct Cache<K, V> {
    ttl: Duration,
    map: RwLock<HashMap<K, (Instant, V)>>,
}

enum Lookup<V> {
    Fresh(V),
    Stale(V),
    Missing,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new(ttl: Duration) -> Self {
        Cache {
            ttl,
            map: RwLock::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K) -> Lookup<V> {
        // A poisoned lock only means another thread panicked mid-insert of a
        // plain value; the map is still consistent, so keep using it.
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Lookup::Fresh(v.clone()),
            Some((_, v)) => Lookup::Stale(v.clone()),
            None => Lookup::Missing,
        }
    }

    fn put(&self, key: K, value: V) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }

    /// Fresh value, else `fetch` (caching its result), else a stale value if the
    /// fetch failed.
    async fn get_or_fetch<F, Fut>(&self, key: K, fetch: F) -> Result<V, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, StoreError>>,
    {
        let stale = match self.get(&key) {
            Lookup::Fresh(v) => return Ok(v),
            Lookup::Stale(v) => Some(v),
            Lookup::Missing => None,
        };
        // A lookup sits on every request's path: with a stale entry to fall back
        // on, a slow or absent database costs at most a second. Without one, wait
        // as long as the pool allows: a cold burst (hundreds of requests missing
        // the cache at once) must queue for connections, not fail.
        let fetched = match stale {
            Some(_) => tokio::time::timeout(FETCH_TIMEOUT, fetch())
                .await
                .unwrap_or(Err(StoreError::Timeout(FETCH_TIMEOUT))),
            None => fetch().await,
        };
        match fetched {
            Ok(v) => {
                self.put(key, v.clone());
                Ok(v)
            }
            Err(e) => match stale {
                Some(v) => {
                    tracing::warn!(error = %e, "database lookup failed; serving a cached entry");
                    // Re-arm the entry: the next lookups answer from memory for
                    // another TTL instead of each waiting out a failing database.
                    self.put(key, v.clone());
                    Ok(v)
                }
                None => Err(e),
            },
        }
    }
}

/// Cached project and admin lookups.
#[derive(Debug, Clone)]
pub struct Directory {
    store: Store,
    projects: Arc<Cache<[u8; 32], Option<Project>>>,
    projects_by_id: Arc<Cache<Uuid, Option<Project>>>,
    admins: Arc<Cache<Uuid, Arc<HashSet<String>>>>,
}

impl Directory {
    /// Empty caches over `store`, each entry trusted for `ttl`.
    pub fn new(store: Store, ttl: Duration) -> Directory {
        Directory {
            store,
            projects: Arc::new(Cache::new(ttl)),
            projects_by_id: Arc::new(Cache::new(ttl)),
            admins: Arc::new(Cache::new(ttl)),
        }
    }

    /// The store behind the caches, for uncached queries.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The project a presented API key belongs to; `None` for unknown keys (which
    /// are cached too, so a flood of bad keys does not reach the database).
    pub async fn project_for_key(&self, api_key: &str) -> Result<Option<Project>, StoreError> {
        let digest = key_digest(api_key);
        self.projects
            .get_or_fetch(digest, || self.store.project_by_key_digest(&digest))
            .await
    }

    /// A project by id (for messages whose project an intake has sealed).
    pub async fn project_by_id(&self, id: Uuid) -> Result<Option<Project>, StoreError> {
        self.projects_by_id
            .get_or_fetch(id, || self.store.project(id))
            .await
    }

    /// Whether `email` (any case) is an admin of the project.
    pub async fn is_admin(&self, project_id: Uuid, email: &str) -> Result<bool, StoreError> {
        let admins = self
            .admins
            .get_or_fetch(project_id, || async {
                Ok(Arc::new(
                    self.store.admins(project_id).await?.into_iter().collect(),
                ))
            })
            .await?;
        Ok(admins.contains(&email.to_ascii_lowercase()))
    }
}
