//! The CLI's error type and how each variant is shown to the user, worded the way kubectl words it.
//!
//! The verbs keep going after a per-object failure (as kubectl does), so an error is usually
//! printed where it happens with [`report`] and the verb finally returns [`Error::AlreadyReported`].

use std::path::PathBuf;

use kube::core::Status;

/// Everything a client verb can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server answered with a `Status` failure (or an error body kube turned into one).
    #[error("{}", format_status(.0))]
    Api(Box<Status>),
    /// The request never got an answer: connection refused, TLS, timeouts, bad responses.
    #[error("request to the api server failed: {0}")]
    Request(#[source] kube::Error),
    /// No kubeconfig could be found or read.
    #[error("{0}")]
    KubeconfigMissing(String),
    /// A kubeconfig was found but could not be used.
    #[error("invalid kubeconfig: {0}")]
    KubeconfigInvalid(#[source] kube::config::KubeconfigError),
    /// TYPE is neither a resource, a short name, a kind nor a category the server knows.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownResourceType(String),
    /// A manifest's `apiVersion`/`kind` are not served.
    #[error(
        "resource mapping not found for name: \"{name}\" namespace: \"{namespace}\" from \"{source_name}\": no matches for kind \"{kind}\" in version \"{api_version}\"\nensure CRDs are installed first"
    )]
    NoKindMatch {
        /// `metadata.name` of the object.
        name: String,
        /// `metadata.namespace` of the object, possibly empty.
        namespace: String,
        /// Where the object came from (a file name or `STDIN`).
        source_name: String,
        /// The manifest's `kind`.
        kind: String,
        /// The manifest's `apiVersion`.
        api_version: String,
    },
    /// A manifest file or directory could not be read.
    #[error("the path \"{}\" could not be read: {source}", path.display())]
    ReadManifest {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A manifest is not valid YAML or JSON.
    #[error("error parsing {source_name}: {source}")]
    ParseManifest {
        /// The file name or `STDIN`.
        source_name: String,
        /// What the parser said.
        #[source]
        source: serde_yaml::Error,
    },
    /// An object in a manifest lacks something every object needs.
    #[error("error validating \"{source_name}\": error validating data: {message}")]
    InvalidManifest {
        /// The file name or `STDIN`.
        source_name: String,
        /// What is missing, kubectl style (`[apiVersion not set, kind not set]`).
        message: String,
    },
    /// The command line is inconsistent in a way clap cannot express.
    #[error("{0}")]
    Usage(String),
    /// An output document could not be rendered.
    #[error("failed to render output: {0}")]
    Render(String),
    /// Waiting for an object to go away took too long.
    #[error("timed out waiting for the condition on {0}")]
    WaitTimeout(String),
    /// A port-forward cannot start: the pod is not running, a local port is taken.
    #[error("{0}")]
    PortForward(String),
    /// Errors were already printed to stderr; the command as a whole failed.
    #[error("one or more errors were reported")]
    AlreadyReported,
}

impl From<kube::Error> for Error {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => Error::Api(status),
            other => Error::Request(other),
        }
    }
}

impl Error {
    /// True when the server said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Api(s) if s.code == 404)
    }

    /// Prefixes a server error with what the CLI was doing, like kubectl's
    /// `error when creating "deploy.yaml": ...` (Invalid errors keep their own wording).
    pub fn with_source(self, action: &str, source_name: &str) -> Self {
        match self {
            Error::Api(mut status) if status.reason != "Invalid" => {
                status.message =
                    format!("error when {action} \"{source_name}\": {}", status.message);
                Error::Api(status)
            }
            other => other,
        }
    }
}

/// The line(s) kubectl would print to stderr for this error.
pub fn report(err: &Error) -> String {
    match err {
        Error::Api(_) => err.to_string(),
        Error::Request(e) => match connection_refused(e) {
            Some(()) => format!(
                "The connection to the server was refused - did you specify the right host or port? ({e})"
            ),
            None => format!("error: {err}"),
        },
        _ => format!("error: {err}"),
    }
}

fn connection_refused(err: &kube::Error) -> Option<()> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return Some(());
        }
        source = e.source();
    }
    None
}

/// kube-client's reason for an error body that was not a `Status` (plain text, HTML).
const UNPARSED_REASON: &str = "Failed to parse error data";

/// Formats a server `Status` as kubectl's `cmdutil.CheckErr` does.
pub fn format_status(status: &Status) -> String {
    if status.reason == UNPARSED_REASON {
        return format_unparsed(status);
    }
    if status.reason == "Invalid" {
        return format_invalid(status);
    }
    if status.reason.is_empty() {
        format!("Error from server: {}", status.message)
    } else {
        format!("Error from server ({}): {}", status.reason, status.message)
    }
}

fn format_invalid(status: &Status) -> String {
    let Some(details) = status
        .details
        .as_ref()
        .filter(|d| !d.kind.is_empty() || !d.name.is_empty())
    else {
        return format!("The request is invalid: {}", status.message);
    };
    let causes: Vec<String> = details
        .causes
        .iter()
        .map(|c| {
            if c.field.is_empty() {
                c.message.clone()
            } else {
                format!("{}: {}", c.field, c.message)
            }
        })
        .collect();
    let head = format!("The {} \"{}\" is invalid", details.kind, details.name);
    match causes.as_slice() {
        [] => format!("{head}: {}", status.message),
        [one] => format!("{head}: {one}"),
        many => {
            let list: Vec<String> = many.iter().map(|c| format!("* {c}")).collect();
            format!("{head}: \n{}", list.join("\n"))
        }
    }
}

/// A non-`Status` error body: kubectl names the reason after the HTTP code.
fn format_unparsed(status: &Status) -> String {
    let body = status.message.trim();
    let (reason, message) = match status.code {
        400 => ("BadRequest", body.to_string()),
        401 => ("Unauthorized", body.to_string()),
        403 => ("Forbidden", body.to_string()),
        404 => (
            "NotFound",
            "the server could not find the requested resource".to_string(),
        ),
        405 => (
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
        ),
        409 => ("Conflict", body.to_string()),
        415 => ("UnsupportedMediaType", body.to_string()),
        422 => ("Invalid", body.to_string()),
        429 => ("TooManyRequests", body.to_string()),
        503 => (
            "ServiceUnavailable",
            "the server is currently unable to handle the request".to_string(),
        ),
        code if code >= 500 => (
            "InternalError",
            format!("an error on the server ({body:?}) has prevented the request from succeeding"),
        ),
        _ => ("", body.to_string()),
    };
    if reason.is_empty() {
        format!("Error from server: {message}")
    } else {
        format!("Error from server ({reason}): {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn status(json: &str) -> Status {
        serde_json::from_str(json).expect("valid status")
    }

    #[test]
    fn not_found_is_printed_like_kubectl() {
        let s = status(
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"deployments.apps \"x\" not found","reason":"NotFound","details":{"name":"x","group":"apps","kind":"deployments"},"code":404}"#,
        );
        assert_eq!(
            format_status(&s),
            r#"Error from server (NotFound): deployments.apps "x" not found"#
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let mut s = Status::failure("ignored", "Invalid");
        s.details = Some(StatusDetails {
            name: "solo".into(),
            group: String::new(),
            kind: "Pod".into(),
            uid: String::new(),
            causes: vec![
                StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: "bad".into(),
                    field: "spec.foo".into(),
                },
                StatusCause {
                    reason: "FieldValueInvalid".into(),
                    message: "worse".into(),
                    field: "spec.bar".into(),
                },
            ],
            retry_after_seconds: 0,
        });
        assert_eq!(
            format_status(&s),
            "The Pod \"solo\" is invalid: \n* spec.foo: bad\n* spec.bar: worse"
        );
        if let Some(d) = s.details.as_mut() {
            d.causes.truncate(1);
        }
        assert_eq!(
            format_status(&s),
            "The Pod \"solo\" is invalid: spec.foo: bad"
        );
        s.details = None;
        s.message = "nope".into();
        assert_eq!(format_status(&s), "The request is invalid: nope");
    }

    #[test]
    fn plain_text_errors_are_named_after_the_code() {
        let s = Status::failure("plain text boom", UNPARSED_REASON).with_code(500);
        assert_eq!(
            format_status(&s),
            "Error from server (InternalError): an error on the server (\"plain text boom\") has prevented the request from succeeding"
        );
        let s = Status::failure("404 page not found", UNPARSED_REASON).with_code(404);
        assert_eq!(
            format_status(&s),
            "Error from server (NotFound): the server could not find the requested resource"
        );
    }

    #[test]
    fn source_context_is_added_except_for_invalid() {
        let e = Error::Api(Box::new(Status::failure(
            "deployments.apps \"a\" already exists",
            "AlreadyExists",
        )))
        .with_source("creating", "d.yaml");
        assert_eq!(
            report(&e),
            "Error from server (AlreadyExists): error when creating \"d.yaml\": deployments.apps \"a\" already exists"
        );
        let e =
            Error::Api(Box::new(Status::failure("x", "Invalid"))).with_source("creating", "d.yaml");
        assert_eq!(report(&e), "The request is invalid: x");
    }
}
