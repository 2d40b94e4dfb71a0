//! `GET /v3/submission` (`docs/api.md` §15): the caller's stored submissions,
//! newest first, in ARGOS's item shape, a page at a time.

use super::lifecycle::{caller, param, parse_stamp, query_pairs, respond, stamp};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kyc_core::types::IsoDate;
use kyc_core::{ErrorCode, Rejection};
use kyc_store::lifecycle::list::{ListQuery, Listed};
use serde::Serialize;
use uuid::Uuid;

/// Items per page unless `count` says otherwise.
pub const DEFAULT_COUNT: i64 = 50;
/// The most items per page; a larger `count` is answered with this many.
pub const MAX_COUNT: i64 = 500;

/// The query parameters the listing knows.
const PARAMETERS: [&str; 8] = [
    "submission_id",
    "userid",
    "email",
    "start_date",
    "end_date",
    "count",
    "nextpage_id",
    "nextpage_date",
];

/// `{"Items": […], "nextpageKey"?: {…}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListBody {
    /// The page, newest first.
    #[serde(rename = "Items")]
    pub items: Vec<ListItem>,
    /// Present when more items follow: pass its values as `nextpage_id` and
    /// `nextpage_date`.
    #[serde(rename = "nextpageKey", skip_serializing_if = "Option::is_none")]
    pub nextpage_key: Option<NextPageKey>,
}

/// The last item of a page, which the next page starts after.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NextPageKey {
    /// The last item's `submission_id`.
    pub id: Uuid,
    /// The last item's `created_at`.
    pub created_at: String,
}

/// One stored submission in ARGOS's shape. Absent values are omitted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ListItem {
    /// The submission's id.
    pub submission_id: Uuid,
    /// The person's e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The client's id for the person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    /// When it was received: `YYYY-MM-DD-HH-MM-SS-ZZZ`, UTC.
    pub created_at: String,
    /// The outcome of the identity check (`kycStatus`).
    pub kyc: Kyc,
    /// The person's data.
    pub data: ItemData,
    /// When it was deleted (`YYYY-MM-DD-HH-MM-SS-ZZZ`, UTC); only on deleted submissions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Groups erased from it (`data`, `email`, `userid`, `id_image`,
    /// `selfie_image`); only when some were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased: Vec<String>,
}

/// `{"result": "approved" | "rejected"}`; empty if erased.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Kyc {
    /// `approved` or `rejected`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}

macro_rules! item_data {
    ($($argos:ident <- $ours:literal),* $(,)?) => {
        /// The `data` object of a listed item (ARGOS's names). Absent values are omitted.
        #[derive(Debug, Default, Serialize, utoipa::ToSchema)]
        #[allow(non_snake_case)]
        pub struct ItemData {
            $(
                #[doc = concat!("The submission's `", $ours, "`.")]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $argos: Option<String>,
            )*
        }

        impl ItemData {
            /// Sets the member that holds our field `name`; other names are ignored.
            fn set(&mut self, name: &str, value: Option<String>) {
                match name {
                    $($ours => self.$argos = value,)*
                    _ => {}
                }
            }
        }
    };
}

item_data! {
    full_name <- "fullName",
    first_name <- "firstName",
    last_name <- "lastName",
    gender <- "gender",
    nationality <- "nationality",
    date_of_birth <- "birthDate",
    ip_address <- "ipAddress",
    idType <- "idType",
    idcard_issuingCountry <- "issuingCountry",
    idcard_issueDate <- "issueDate",
    idcard_expireDate <- "expireDate",
    identity_number <- "identityNumber",
    document_number <- "documentNumber",
    address_city <- "address_city",
    address_country <- "address_country",
    address_state <- "address_state",
    address_street <- "address_street",
    address_full <- "address_full",
    cf1 <- "cf1",
    cf2 <- "cf2",
    cf3 <- "cf3",
}

impl ListItem {
    fn of(listed: Listed) -> ListItem {
        let mut data = ItemData::default();
        let (mut email, mut userid, mut result) = (None, None, None);
        for (spec, value) in listed.fields {
            match spec.name {
                "email" => email = value,
                "userid" => userid = value,
                "kycStatus" => result = value,
                name => data.set(name, value),
            }
        }
        ListItem {
            submission_id: listed.id,
            email,
            userid,
            created_at: stamp(listed.created),
            kyc: Kyc { result },
            data,
            deleted_at: listed
                .deleted_at
                .map(|d| d.to_offset(time::UtcOffset::UTC))
                .map(|d| stamp(time::PrimitiveDateTime::new(d.date(), d.time()))),
            erased: listed.erased_groups,
        }
    }
}

/// Lists the caller's stored submissions (`docs/api.md` §15).
pub async fn list(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (project, api_key) = caller(&app, &headers).await?;
    let pairs = query_pairs(query.as_deref(), &PARAMETERS)?;
    let get = |name| param(&pairs, name).filter(|v| !v.is_empty());

    let date = |name| -> Result<Option<time::Date>, Rejection> {
        get(name)
            .map(|v| {
                IsoDate::parse(v)
                    .map(|d| d.0)
                    .ok_or(Rejection::new(ErrorCode::InvalidDate))
            })
            .transpose()
    };
    let (start, end) = (date("start_date")?, date("end_date")?);
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(ApiError::code(ErrorCode::InvalidDate));
    }
    let count = match get("count") {
        None => DEFAULT_COUNT,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Rejection::invalid_format("count"))?
            .min(MAX_COUNT),
    };
    let after = match (get("nextpage_id"), get("nextpage_date")) {
        (None, None) => None,
        (Some(id), Some(date)) => Some((
            parse_stamp(date).ok_or_else(|| Rejection::invalid_format("nextpage_date"))?,
            Uuid::parse_str(id).map_err(|_| Rejection::invalid_format("nextpage_id"))?,
        )),
        (None, Some(_)) => return Err(Rejection::missing(vec!["nextpage_id".into()]).into()),
        (Some(_), None) => return Err(Rejection::missing(vec!["nextpage_date".into()]).into()),
    };
    let midnight = |d: time::Date| time::PrimitiveDateTime::new(d, time::Time::MIDNIGHT);
    let submission_id = match get("submission_id") {
        None => None,
        // Not an id of ours: listed like an unknown one, with nothing.
        Some(v) => match Uuid::parse_str(v) {
            Ok(id) => Some(id),
            Err(_) => return Ok(page(Vec::new(), None, &project, api_key)),
        },
    };
    // PostgreSQL text cannot hold NUL: no stored value has one, so nothing matches.
    if ["userid", "email"]
        .iter()
        .any(|name| get(name).is_some_and(|v| v.contains('\0')))
    {
        return Ok(page(Vec::new(), None, &project, api_key));
    }
    let query = ListQuery {
        project_id: project.id,
        submission_id,
        userid: get("userid").map(str::to_owned),
        email: get("email").map(str::to_owned),
        from: start.map(midnight),
        until: end.and_then(|d| d.next_day()).map(midnight),
        after,
        count,
    };
    let page_found = app
        .directory
        .store()
        .list_submissions(&query, &app.data_key)
        .await
        .map_err(|e| ApiError::lookup("submissions", e))?;
    let next = page_found.next.map(|(created, id)| NextPageKey {
        id,
        created_at: stamp(created),
    });
    let items = page_found.items.into_iter().map(ListItem::of).collect();
    Ok(page(items, next, &project, api_key))
}

fn page(
    items: Vec<ListItem>,
    nextpage_key: Option<NextPageKey>,
    project: &kyc_store::Project,
    api_key: &str,
) -> Response {
    let body = ListBody {
        items,
        nextpage_key,
    };
    respond(
        StatusCode::OK,
        &body,
        project.encryption_required.then_some(api_key),
    )
}
