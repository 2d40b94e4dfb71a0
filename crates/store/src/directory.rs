//! The cached view of projects and admins that the intake and workers consult for
//! every submission.
//!
//! Entries live for a short TTL, so a hot key costs no database round trip and a
//! rotated key or a removed admin stops working within that TTL. When the
//! database is away, an entry past its TTL is served anyway (stale-if-error): a
//! short database outage does not stop the intake from authenticating known
//! keys.
//!
//! A key whose grace period ends (`project_keys.expires_at`) is the exception:
//! its entry remembers when the key expires (counted on this process's monotonic
//! clock from the time left that the database reported), so the key is refused
//! from its expiry on, not up to a TTL later, and never served stale.
//!
//! Every map is bounded and evicts its least recently used entry. Unknown keys
//! are remembered in a map of their own, so a flood of random keys can neither
//! evict a real client's key nor reach the database twice for the same key; and
//! lookups of keys seen nowhere yet share a few database connections, so such a
//! flood cannot take the connections that refreshes of known keys need.

use crate::projects::key_digest;
use crate::{Project, Store, StoreError};
use lru::LruCache;
use std::collections::HashSet;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// How long a lookup may wait for the database when a stale entry could answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// The bounds of a [`Directory`]'s caches.
#[derive(Debug, Clone, Copy)]
pub struct DirectoryLimits {
    /// How long an entry is trusted.
    pub ttl: Duration,
    /// Known keys, projects and admin lists kept (each map).
    pub max_entries: usize,
    /// Unknown keys remembered as unknown.
    pub max_unknown_entries: usize,
}

impl DirectoryLimits {
    /// The defaults of the settings, with `ttl`.
    pub fn with_ttl(ttl: Duration) -> DirectoryLimits {
        DirectoryLimits {
            ttl,
            max_entries: 100_000,
            max_unknown_entries: 10_000,
        }
    }
}

#[derive(Debug)]
struct Cache<K: Hash + Eq, V> {
    ttl: Duration,
    map: Mutex<LruCache<K, (Instant, V)>>,
}

enum Lookup<V> {
    Fresh(V),
    Stale(V),
    Missing,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Cache {
            ttl,
            map: Mutex::new(LruCache::new(
                NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, (Instant, V)>> {
        // A poisoned lock only means another thread panicked mid-insert of a
        // plain value; the map is still consistent, so keep using it.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, key: &K) -> Lookup<V> {
        match self.lock().get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Lookup::Fresh(v.clone()),
            Some((_, v)) => Lookup::Stale(v.clone()),
            None => Lookup::Missing,
        }
    }

    fn fresh(&self, key: &K) -> bool {
        matches!(self.get(key), Lookup::Fresh(_))
    }

    /// Inserts, evicting the least recently used entry when full.
    fn put(&self, key: K, value: V) {
        self.lock().put(key, (Instant::now(), value));
    }

    fn remove(&self, key: &K) {
        self.lock().pop(key);
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

/// A key's project, and until when the key is valid (`None`: no expiry).
type KeyEntry = (Project, Option<Instant>);

/// Whether a key valid until `until` (`None`: no expiry) is still valid.
fn valid(until: Option<Instant>) -> bool {
    until.is_none_or(|until| Instant::now() < until)
}

/// Cached project and admin lookups.
#[derive(Debug, Clone)]
pub struct Directory {
    store: Store,
    projects: Arc<Cache<[u8; 32], KeyEntry>>,
    unknown_keys: Arc<Cache<[u8; 32], ()>>,
    /// Database lookups of keys in neither map: all but two of the pool's
    /// connections at once, so refreshes of known keys and admin lists always
    /// find one.
    cold_lookups: Arc<Semaphore>,
    projects_by_id: Arc<Cache<Uuid, Option<Project>>>,
    admins: Arc<Cache<Uuid, Arc<HashSet<String>>>>,
}

impl Directory {
    /// A directory with the default bounds, each entry trusted for `ttl`.
    pub fn new(store: Store, ttl: Duration) -> Directory {
        Directory::with_limits(store, DirectoryLimits::with_ttl(ttl))
    }

    /// A directory with the given bounds.
    pub fn with_limits(store: Store, limits: DirectoryLimits) -> Directory {
        let pool_size = usize::try_from(store.pool().options().get_max_connections()).unwrap_or(2);
        Directory {
            store,
            projects: Arc::new(Cache::new(limits.ttl, limits.max_entries)),
            unknown_keys: Arc::new(Cache::new(limits.ttl, limits.max_unknown_entries)),
            cold_lookups: Arc::new(Semaphore::new(pool_size.saturating_sub(2).max(1))),
            projects_by_id: Arc::new(Cache::new(limits.ttl, limits.max_entries)),
            admins: Arc::new(Cache::new(limits.ttl, limits.max_entries)),
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
        let known = match self.projects.get(&digest) {
            Lookup::Fresh((project, until)) if valid(until) => return Ok(Some(project)),
            Lookup::Fresh(_) | Lookup::Stale(_) => true,
            Lookup::Missing => false,
        };
        if self.unknown_keys.fresh(&digest) {
            return Ok(None);
        }
        // A key known before refreshes on the pool directly (bounded by its stale
        // fallback); a key seen nowhere waits for one of the cold-lookup permits.
        let _permit = match known {
            true => None,
            false => Some(
                self.cold_lookups
                    .acquire()
                    .await
                    .map_err(|_| StoreError::Timeout(FETCH_TIMEOUT))?,
            ),
        };
        let fetch = self.store.key_by_digest(&digest);
        let fetched = match known {
            true => tokio::time::timeout(FETCH_TIMEOUT, fetch)
                .await
                .unwrap_or(Err(StoreError::Timeout(FETCH_TIMEOUT))),
            false => fetch.await,
        };
        match fetched {
            Ok(Some((project, left))) => {
                let until = left.map(|left| Instant::now() + left);
                self.projects.put(digest, (project.clone(), until));
                Ok(Some(project))
            }
            Ok(None) => {
                // Revoked (or never known): forget it as known, remember it as not.
                self.projects.remove(&digest);
                self.unknown_keys.put(digest, ());
                Ok(None)
            }
            Err(e) => match self.projects.get(&digest) {
                Lookup::Fresh((project, until)) | Lookup::Stale((project, until))
                    if valid(until) =>
                {
                    tracing::warn!(error = %e, "database lookup failed; serving a cached entry");
                    self.projects.put(digest, (project.clone(), until));
                    Ok(Some(project))
                }
                // An expired key is not served stale: refused, as the database
                // would have.
                Lookup::Fresh(_) | Lookup::Stale(_) => {
                    self.projects.remove(&digest);
                    Ok(None)
                }
                Lookup::Missing => Err(e),
            },
        }
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
