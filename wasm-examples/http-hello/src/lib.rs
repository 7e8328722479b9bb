//! `wasmkube/http-hello`: a `wasi:http` handler component, the serverless shape of a pod.
//!
//! It exports `wasi:http/incoming-handler` and no `wasi:cli/run`; the node agent listens on
//! the container's first `containerPort` (else `PORT`, else 8080) and runs one instance per
//! request. Each request gets a plain-text greeting naming the pod (`HOSTNAME`), the method
//! and the path, and an access-log line goes to stdout. `GET /status/CODE` answers with
//! that status code, for probes and tests.
//!
//! ```yaml
//! apiVersion: v1
//! kind: Pod
//! metadata:
//!   name: hello
//! spec:
//!   containers:
//!   - name: hello
//!     image: wasmkube/http-hello
//!     ports:
//!     - containerPort: 8080
//! ```

#![allow(
    unsafe_code,
    reason = "the wasip2 export! macro generates the component's export glue"
)]

/// The status and body for a request.
pub fn respond(pod: &str, method: &str, path: &str) -> (u16, String) {
    let status = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..600).contains(c))
        .unwrap_or(200);
    (
        status,
        format!("Hello from wasi:http on pod {pod}: {method} {path}\n"),
    )
}

#[cfg(target_os = "wasi")]
mod component {
    use wasip2::http::types::{
        Fields, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
    };

    struct Hello;

    fn method_name(m: &Method) -> String {
        match m {
            Method::Get => "GET".into(),
            Method::Head => "HEAD".into(),
            Method::Post => "POST".into(),
            Method::Put => "PUT".into(),
            Method::Delete => "DELETE".into(),
            Method::Connect => "CONNECT".into(),
            Method::Options => "OPTIONS".into(),
            Method::Trace => "TRACE".into(),
            Method::Patch => "PATCH".into(),
            Method::Other(s) => s.clone(),
        }
    }

    impl wasip2::exports::http::incoming_handler::Guest for Hello {
        fn handle(request: IncomingRequest, out: ResponseOutparam) {
            let method = method_name(&request.method());
            let path = request.path_with_query().unwrap_or_else(|| "/".into());
            let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
            let (status, text) = super::respond(&pod, &method, &path);
            let headers = Fields::from_list(&[(
                "content-type".to_string(),
                b"text/plain; charset=utf-8".to_vec(),
            )])
            .expect("a valid header");
            let response = OutgoingResponse::new(headers);
            let _ = response.set_status_code(status);
            let Ok(body) = response.body() else {
                return;
            };
            ResponseOutparam::set(out, Ok(response));
            if let Ok(stream) = body.write() {
                let _ = stream.blocking_write_and_flush(text.as_bytes());
            }
            let _ = OutgoingBody::finish(body, None);
            println!("http-hello: {method} {path} {status}");
        }
    }

    wasip2::http::proxy::export!(Hello);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greets_and_honours_status_paths() {
        let (s, body) = respond("p", "GET", "/x");
        assert_eq!(s, 200);
        assert_eq!(body, "Hello from wasi:http on pod p: GET /x\n");
        assert_eq!(respond("p", "GET", "/status/503").0, 503);
        assert_eq!(respond("p", "GET", "/status/99").0, 200);
    }
}
