//! Listing a project's stored submissions, newest first, a page at a time.
//!
//! Keyset pagination on (creation time to the millisecond, id), both
//! descending, served by `submissions_list_idx`: a page costs the same however
//! deep it is, and rows stored between two pages neither repeat nor push others
//! out (a newer row sorts before the cursor; an older one after it, where the
//! next pages find it).

use super::{decode_fields, field_columns};
use crate::{DataKey, Store, StoreError};
use kyc_core::submission::FieldSpec;
use sqlx::{Postgres, QueryBuilder, Row};
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// The sort key of the listing: `date_trunc('milliseconds', received_at)` in UTC.
const CREATED: &str = "date_trunc('milliseconds', received_at AT TIME ZONE 'UTC')";

/// What to list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The caller's project: nothing else is ever listed.
    pub project_id: Uuid,
    /// Only this submission.
    pub submission_id: Option<Uuid>,
    /// Only submissions with this `userid`.
    pub userid: Option<String>,
    /// Only submissions with this `email`.
    pub email: Option<String>,
    /// Created at or after (UTC).
    pub from: Option<PrimitiveDateTime>,
    /// Created before (UTC).
    pub until: Option<PrimitiveDateTime>,
    /// The previous page's last item (creation time, id): list after it.
    pub after: Option<(PrimitiveDateTime, Uuid)>,
    /// At most this many items.
    pub count: i64,
}

/// One listed submission.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its id.
    pub id: Uuid,
    /// When it was received, to the millisecond, UTC.
    pub created: PrimitiveDateTime,
    /// When it was deleted, if it was.
    pub deleted_at: Option<OffsetDateTime>,
    /// Groups erased from it.
    pub erased_groups: Vec<String>,
    /// Every field in its wire form (`None`: absent or erased), sealed ones opened.
    pub fields: Vec<(&'static FieldSpec, Option<String>)>,
}

/// A page: its items and, when more follow, the key of the next page.
#[derive(Debug, Clone)]
pub struct Page {
    /// Newest first.
    pub items: Vec<Listed>,
    /// The last item's (creation time, id), when there is a next page.
    pub next: Option<(PrimitiveDateTime, Uuid)>,
}

impl Store {
    /// One page of the project's stored (accepted) submissions, newest first.
    pub async fn list_submissions(
        &self,
        query: &ListQuery,
        key: &DataKey,
    ) -> Result<Page, StoreError> {
        let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT id, {CREATED}, deleted_at, erased_groups, {}, pii_key_id, pii_format \
             FROM submissions WHERE status = 'accepted' AND project_id = ",
            field_columns()
        ));
        sql.push_bind(query.project_id);
        if let Some(id) = query.submission_id {
            sql.push(" AND id = ").push_bind(id);
        }
        if let Some(userid) = &query.userid {
            sql.push(" AND userid = ").push_bind(userid.clone());
        }
        if let Some(email) = &query.email {
            sql.push(" AND email = ").push_bind(email.clone());
        }
        if let Some(from) = query.from {
            sql.push(format!(" AND {CREATED} >= ")).push_bind(from);
        }
        if let Some(until) = query.until {
            sql.push(format!(" AND {CREATED} < ")).push_bind(until);
        }
        if let Some((created, id)) = query.after {
            sql.push(format!(" AND ({CREATED}, id) < ("))
                .push_bind(created)
                .push(", ")
                .push_bind(id)
                .push(")");
        }
        // One more than asked: whether a next page exists.
        sql.push(format!(" ORDER BY {CREATED} DESC, id DESC LIMIT "))
            .push_bind(query.count + 1);
        let rows = sql.build().fetch_all(self.pool()).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.iter().take(usize::try_from(query.count).unwrap_or(0)) {
            let id: Uuid = row.try_get(0)?;
            items.push(Listed {
                id,
                created: row.try_get(1)?,
                deleted_at: row.try_get(2)?,
                erased_groups: row.try_get(3)?,
                fields: decode_fields(row, 4, id, key)?,
            });
        }
        let next = (rows.len() > items.len())
            .then(|| items.last().map(|l| (l.created, l.id)))
            .flatten();
        Ok(Page { items, next })
    }
}
