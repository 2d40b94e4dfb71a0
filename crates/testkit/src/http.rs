//! An HTTP client for the intake.

use reqwest::StatusCode;
use serde_json::Value;
use std::net::SocketAddr;

/// The intake's API as a client sees it.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
}

/// A response: status, `Retry-After` if any, and the JSON body (`Null` if none).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Reply {
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("errorCode").and_then(Value::as_str)
    }

    pub fn submission_id(&self) -> uuid::Uuid {
        self.body["submissionId"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .unwrap_or_else(|| panic!("no submissionId in {:?}", self.body))
    }
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        // reqwest's TLS needs the process's rustls provider first.
        kyc_webhooks::install_crypto_provider();
        Api {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("http client"),
        }
    }

    /// POSTs a JSON value.
    pub async fn submit(&self, api_key: &str, body: &Value) -> Reply {
        self.submit_raw(Some(api_key), serde_json::to_vec(body).expect("json"), &[])
            .await
    }

    /// POSTs raw bytes with optional key and extra headers; `path_query` defaults
    /// to the submission endpoint.
    pub async fn submit_raw(
        &self,
        api_key: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Reply {
        self.post("/v3/submission/migration", api_key, body, extra)
            .await
    }

    pub async fn post(
        &self,
        path: &str,
        api_key: Option<&str>,
        body: Vec<u8>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        reply(request.send().await.expect("intake answers")).await
    }

    pub async fn get(&self, path: &str, api_key: Option<&str>) -> Reply {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        reply(request.send().await.expect("intake answers")).await
    }

    /// Any method, with an optional JSON body (`PATCH`, `DELETE`, …).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        api_key: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = api_key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        reply(request.send().await.expect("intake answers")).await
    }

    /// `GET /v3/submission/migration/{id}`.
    pub async fn result(&self, api_key: &str, id: uuid::Uuid) -> Reply {
        self.get(&format!("/v3/submission/migration/{id}"), Some(api_key))
            .await
    }
}

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        body,
    }
}
