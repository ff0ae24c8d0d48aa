use std::collections::BTreeMap;
use std::time::Duration;

use crisisd::channels::{
    Channel, DeliveryError, GatewayMethod, GatewaySuccess, HttpChannel, SmsGateway,
    SmsGatewaySettings,
};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{secret_file, text_delivery};

fn settings(name: &str) -> SmsGatewaySettings {
    SmsGatewaySettings {
        name: name.into(),
        method: GatewayMethod::Post,
        url: String::new(),
        headers: BTreeMap::new(),
        body: None,
        secret_env: None,
        secret_file: None,
        success: GatewaySuccess::default(),
        dlr_base_url: None,
        dlr_secret_env: None,
        dlr_secret_file: None,
        inbound_token_env: None,
        inbound_token_file: None,
        max_segments: 3,
        concurrency: 2,
        rate_per_second: None,
        burst: None,
        timeout: Duration::from_secs(5),
    }
}

/// A Kannel-style `sendsms` interface: everything in the query string, the
/// text as UTF-8 with `coding=2` when it needs UCS-2.
fn kannel(server: &MockServer, password: &tempfile::NamedTempFile) -> HttpChannel<SmsGateway> {
    let mut s = settings("kannel");
    s.method = GatewayMethod::Get;
    s.url = format!(
        "{}/cgi-bin/sendsms?username=crisisd&password={{{{ secret|urlencode }}}}&to={{{{ to|urlencode }}}}\
         &text={{{{ text|urlencode }}}}&charset={{{{ charset }}}}&coding={{{{ coding }}}}&dlr-url={{{{ id }}}}",
        server.uri()
    );
    s.secret_file = Some(password.path().to_path_buf());
    s.success.contains = Some("Accepted for delivery".into());
    HttpChannel::<SmsGateway>::from_settings(&s, reqwest::Client::new()).expect("channel")
}

#[tokio::test]
async fn a_query_string_gateway_gets_charset_and_coding_for_bengali() {
    let server = MockServer::start().await;
    let password = secret_file("pa ss&word");
    let delivery = text_delivery("kannel", "+8801712345678", "বন্যা: অফিস বন্ধ");
    Mock::given(method("GET"))
        .and(path("/cgi-bin/sendsms"))
        .and(query_param("username", "crisisd"))
        .and(query_param("password", "pa ss&word"))
        .and(query_param("to", "+8801712345678"))
        .and(query_param("text", "বন্যা: অফিস বন্ধ"))
        .and(query_param("charset", "UTF-8"))
        .and(query_param("coding", "2"))
        .and(query_param("dlr-url", delivery.id.to_string().as_str()))
        .respond_with(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery"))
        .expect(1)
        .mount(&server)
        .await;
    kannel(&server, &password)
        .send(&delivery)
        .await
        .expect("sent");
}

#[tokio::test]
async fn gsm_text_gets_coding_0() {
    let server = MockServer::start().await;
    let password = secret_file("p");
    Mock::given(method("GET"))
        .and(query_param("coding", "0"))
        .respond_with(ResponseTemplate::new(202).set_body_string("0: Accepted for delivery"))
        .expect(1)
        .mount(&server)
        .await;
    kannel(&server, &password)
        .send(&text_delivery(
            "kannel",
            "+4915112345678",
            "Payments are down",
        ))
        .await
        .expect("sent");
}

#[tokio::test]
async fn a_2xx_without_the_success_text_is_dead_with_the_gateways_answer() {
    let server = MockServer::start().await;
    let password = secret_file("p");
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(202)
                .set_body_string("3: Queued for later delivery? no: Invalid receiver"),
        )
        .mount(&server)
        .await;
    let err = kannel(&server, &password)
        .send(&text_delivery("kannel", "+4915112345678", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DeliveryError::Permanent { reason } if reason.contains("Invalid receiver")),
        "{err:?}"
    );
}

fn json_gateway(server: &MockServer) -> HttpChannel<SmsGateway> {
    let mut s = settings("json-gw");
    s.url = format!("{}/api/v1/messages", server.uri());
    s.headers
        .insert("Authorization".into(), "Bearer static-token".into());
    s.headers
        .insert("Content-Type".into(), "application/json".into());
    s.body = Some(r#"{"phone": {{ to|tojson }}, "message": {{ text|tojson }}, "encoding": "{{ encoding }}", "ref": "{{ id }}"}"#.into());
    s.success.json_pointer = Some("/result/state".into());
    s.success.equals = Some("queued".into());
    HttpChannel::<SmsGateway>::from_settings(&s, reqwest::Client::new()).expect("channel")
}

#[tokio::test]
async fn a_json_gateway_gets_a_templated_body_and_success_is_read_by_json_pointer() {
    let server = MockServer::start().await;
    let delivery = text_delivery("json-gw", "+15005550006", "Say \"hi\" 😀");
    Mock::given(method("POST"))
        .and(path("/api/v1/messages"))
        .and(header("authorization", "Bearer static-token"))
        .and(body_json(serde_json::json!({
            "phone": "+15005550006", "message": "Say \"hi\" 😀", "encoding": "ucs2", "ref": delivery.id.to_string()
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"result": {"state": "queued"}})))
        .expect(1)
        .mount(&server)
        .await;
    json_gateway(&server).send(&delivery).await.expect("sent");
}

#[tokio::test]
async fn a_json_gateway_that_answers_otherwise_is_refused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"result": {"state": "rejected"}})),
        )
        .mount(&server)
        .await;
    let rejected = json_gateway(&server)
        .send(&text_delivery("json-gw", "+15005550006", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&rejected, DeliveryError::Permanent { reason } if reason.contains("rejected")),
        "{rejected:?}"
    );
}

#[tokio::test]
async fn a_template_that_does_not_render_is_a_config_error() {
    let mut s = settings("broken");
    s.url = "https://gw.example.com/send?to={{ recipient }}".into();
    let err = HttpChannel::<SmsGateway>::from_settings(&s, reqwest::Client::new())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("broken"), "{err}");
}

#[tokio::test]
async fn a_misspelt_variable_behind_a_filter_is_a_config_error_naming_it() {
    for (url, body) in [
        (
            "https://gw.example.com/send",
            "{\"text\": {{ txt|tojson }}}",
        ),
        ("https://gw.example.com/send?text={{ txt|urlencode }}", ""),
        (
            "https://gw.example.com/send",
            "{% if tex is defined %}{{ text }}{% endif %}",
        ),
    ] {
        let mut s = settings("typo");
        s.url = url.into();
        s.body = (!body.is_empty()).then(|| body.to_owned());
        let err = HttpChannel::<SmsGateway>::from_settings(&s, reqwest::Client::new())
            .err()
            .unwrap_or_else(|| panic!("accepted {url} {body}"))
            .to_string();
        assert!(
            (err.contains("`txt`") || err.contains("`tex`")) && err.contains("text, to"),
            "{err}"
        );
    }
}
