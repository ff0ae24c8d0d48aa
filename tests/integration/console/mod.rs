//! The console: accounts, sign-in and sessions, the pages, and the
//! browser end-to-end tests.

pub mod accounts;
mod browser;
mod compose;
mod correction;
mod drill;
mod pages;
mod proposals;
mod signin;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};

use crate::support::TestApp;
pub use accounts::add_user;

/// What a browser keeps: cookies, set by the console and sent back.
pub struct Browser {
    base: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
    /// The extra headers every request carries (a proxy's, a Host).
    pub headers: HeaderMap,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's first form.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self
            .body
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("end") + start;
        self.body[start..end].to_owned()
    }

    /// The value of the first input named `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name}: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("end") + start;
        self.body[start..end].to_owned()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
            headers: HeaderMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        for set in headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() || set.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let body = response.text().await.expect("body");
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.keep(response).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .headers(self.headers.clone())
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .expect("POST");
        self.keep(response).await
    }

    /// The first second of an event stream, as text.
    pub async fn get_stream(&mut self, path: &str) -> String {
        let mut response = self
            .client
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let mut text = String::new();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .expect("an event in time")
                .expect("read");
            match chunk {
                Some(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
                None => break,
            }
        }
        text
    }

    /// Fills in and sends the sign-in form.
    pub async fn sign_in(&mut self, user: &str, password: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/console/login",
            &[
                ("username", user),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/console"),
            ],
        )
        .await
    }

    /// Signs in and checks it worked.
    pub async fn signed_in(app: &TestApp, user: &str, password: &str) -> Self {
        let mut browser = Self::new(app);
        let page = browser.sign_in(user, password).await;
        assert_eq!(
            page.status,
            StatusCode::SEE_OTHER,
            "signed in: {}",
            page.body
        );
        browser
    }
}

pub const PASSWORD: &str = "correct horse battery";

/// A daemon with a console account of each role: `viewer`, `author`,
/// `approver` and `admin`, all with `PASSWORD`.
pub async fn with_accounts(app: &TestApp) {
    for role in ["viewer", "author", "approver", "admin"] {
        add_user(app, role, role, PASSWORD).await;
    }
}
