//! STS `AssumeRole` (the MinIO / AWS STS API): a form-encoded POST signed with SigV4
//! (service `sts`) with the operator's key, answered in XML. Building the form and
//! reading the answer are pure functions; `assume_role` does one network call.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use quick_xml::events::Event;
use quick_xml::Reader;

use crate::domain::time::{self, Timestamp};

/// Temporary credentials as STS returns them.
#[derive(Clone, PartialEq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: String,
    pub expiration: Timestamp,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Why a call failed, as reporters are told in `s3.error`.
#[derive(Clone, Debug, PartialEq)]
pub enum StsError {
    /// The network failed, timed out, or STS answered 5xx: worth retrying.
    Unreachable,
    /// STS answered with an error: its `Code` (never its secrets).
    Refused(String),
}

impl StsError {
    pub fn for_reporters(&self) -> String {
        match self {
            StsError::Unreachable => "sts_unreachable".into(),
            StsError::Refused(code) => format!("sts_refused: {code}"),
        }
    }
}

pub struct Request<'a> {
    pub endpoint: &'a str,
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub policy: &'a str,
    pub duration_secs: u64,
}

/// What AWS clients leave unencoded in a query string: the RFC 3986 unreserved set.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The form body of an AssumeRole call, encoded as AWS's own clients encode it (`%20`,
/// `%2A`; not the HTML form's `+` and bare `*`), since services may re-encode the form to
/// check the signature.
pub fn form(r: &Request<'_>) -> String {
    let duration = r.duration_secs.to_string();
    let mut pairs = vec![
        ("Action", "AssumeRole"),
        ("Version", "2011-06-15"),
        ("DurationSeconds", duration.as_str()),
        ("Policy", r.policy),
        ("RoleSessionName", r.session_name),
    ];
    if !r.role_arn.is_empty() {
        pairs.push(("RoleArn", r.role_arn));
    }
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", percent_encoding::utf8_percent_encode(v, UNRESERVED)))
        .collect::<Vec<_>>()
        .join("&")
}

const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// One signed AssumeRole call (no retry: the caller decides).
pub async fn assume_role(http: &reqwest::Client, r: &Request<'_>, timeout: Duration) -> Result<Credentials, StsError> {
    let body = form(r);
    let identity =
        aws_credential_types::Credentials::new(r.access_key, r.secret_key, None, None, "ufrecs-operator").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(r.region)
        .name("sts")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| StsError::Refused("signing".into()))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        r.endpoint,
        [("content-type", CONTENT_TYPE)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|_| StsError::Refused("bad_endpoint".into()))?;
    let (instructions, _) = sign(signable, &params).map_err(|_| StsError::Refused("signing".into()))?.into_parts();
    let mut req = http.post(r.endpoint).timeout(timeout).header("content-type", CONTENT_TYPE).body(body);
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    let res = req.send().await.map_err(|_| StsError::Unreachable)?;
    let status = res.status();
    let text = res.text().await.map_err(|_| StsError::Unreachable)?;
    if status.is_server_error() {
        return Err(StsError::Unreachable);
    }
    parse(&text, status.is_success())
}

/// Reads an AssumeRole answer: the credentials, or the error's `Code`.
pub fn parse(xml: &str, success: bool) -> Result<Credentials, StsError> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let (mut access_key, mut secret_key, mut session_token, mut expiration, mut code) =
        (None, None, None, None, None::<String>);
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned());
                text.clear();
            }
            // Text arrives in pieces, entity references apart (`&amp;` in a token).
            Ok(Event::Text(t)) => text.push_str(&t.decode().unwrap_or_default()),
            Ok(Event::GeneralRef(r)) => match r.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                _ => match r.decode().unwrap_or_default().as_ref() {
                    "amp" => text.push('&'),
                    "lt" => text.push('<'),
                    "gt" => text.push('>'),
                    "quot" => text.push('"'),
                    "apos" => text.push('\''),
                    _ => {}
                },
            },
            Ok(Event::End(_)) => {
                let value = std::mem::take(&mut text).trim().to_owned();
                let element = path.pop();
                let in_credentials = path.iter().any(|p| p == "Credentials");
                match element.as_deref() {
                    Some("AccessKeyId") if in_credentials => access_key = Some(value),
                    Some("SecretAccessKey") if in_credentials => secret_key = Some(value),
                    Some("SessionToken") if in_credentials => session_token = Some(value),
                    Some("Expiration") if in_credentials => expiration = Some(value),
                    Some("Code") if code.is_none() => code = Some(value),
                    _ => {}
                }
            }
            Ok(Event::Eof) => break,
            Err(_) if !success => break,
            Err(_) => return Err(StsError::Refused("malformed_answer".into())),
            _ => {}
        }
    }
    if let Some(code) = code.filter(|_| !success) {
        return Err(StsError::Refused(sanitize(&code)));
    }
    match (access_key, secret_key, session_token, expiration.as_deref().and_then(time::parse)) {
        (Some(access_key), Some(secret_key), Some(session_token), Some(expiration)) if success => {
            Ok(Credentials { access_key, secret_key, session_token, expiration })
        }
        _ if success => Err(StsError::Refused("malformed_answer".into())),
        _ => Err(StsError::Refused("unknown".into())),
    }
}

/// An error code goes to reporters and logs: letters and digits only.
fn sanitize(code: &str) -> String {
    let clean: String = code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').take(64).collect();
    if clean.is_empty() {
        "unknown".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser><Arn>arn:aws:sts::123:assumed-role/r/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalr/K7MDENG+bPxRfiCY</SecretAccessKey>
      <SessionToken>FQoG&amp;ZXIv</SessionToken>
      <Expiration>2025-08-15T15:02:11.123456Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;

    #[test]
    fn credentials_are_read_with_or_without_fractional_seconds() {
        let c = parse(OK, true).unwrap();
        assert_eq!(c.access_key, "ASIAEXAMPLE");
        assert_eq!(c.secret_key, "wJalr/K7MDENG+bPxRfiCY");
        assert_eq!(c.session_token, "FQoG&ZXIv");
        assert_eq!(time::format(c.expiration), "2025-08-15T15:02:11Z");
        let plain = OK.replace(".123456Z", "Z");
        assert_eq!(time::format(parse(&plain, true).unwrap().expiration), "2025-08-15T15:02:11Z");
        assert!(!format!("{c:?}").contains("wJalr"), "Debug hides the secret");
    }

    #[test]
    fn an_error_answer_gives_its_code_only() {
        let xml = r#"<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>
            <Message>The request signature we calculated does not match</Message></Error></ErrorResponse>"#;
        assert_eq!(parse(xml, false), Err(StsError::Refused("SignatureDoesNotMatch".into())));
        assert_eq!(
            parse("<Error><Code>Access Denied; drop</Code></Error>", false),
            Err(StsError::Refused("AccessDenieddrop".into()))
        );
        assert_eq!(parse("not xml at all <", false), Err(StsError::Refused("unknown".into())));
        assert_eq!(parse("<x/>", true), Err(StsError::Refused("malformed_answer".into())));
        assert_eq!(StsError::Refused("X".into()).for_reporters(), "sts_refused: X");
    }

    #[test]
    fn the_form_carries_every_parameter_and_the_role_only_when_set() {
        let mut r = Request {
            endpoint: "http://127.0.0.1:9000",
            region: "us-east-1",
            access_key: "AK",
            secret_key: "SK",
            role_arn: "",
            session_name: "ufrecs-source-1",
            policy: r#"{"a":"b c"}"#,
            duration_secs: 900,
        };
        let f = form(&r);
        assert_eq!(
            f,
            "Action=AssumeRole&Version=2011-06-15&DurationSeconds=900&Policy=%7B%22a%22%3A%22b%20c%22%7D&RoleSessionName=ufrecs-source-1"
        );
        r.role_arn = "arn:aws:iam::123:role/uploader";
        assert!(form(&r).ends_with("&RoleArn=arn%3Aaws%3Aiam%3A%3A123%3Arole%2Fuploader"));
        assert!(!form(&r).contains("SK"));
    }
}
