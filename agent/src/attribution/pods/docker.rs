//! Docker's Engine API over its unix socket: `GET /containers/json?all=1` lists every
//! container with its labels (the kubelet's, when cri-dockerd started it).
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::Duration,
};

use http_body_util::{BodyExt as _, Empty};
use hyper::{Request, body::Bytes, header::HOST};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use super::{RuntimeError, labels::Listed};

/// cri-dockerd's label on a pod's sandbox container.
const DOCKER_TYPE: &str = "io.kubernetes.docker.type";

/// A container in `GET /containers/json`.
#[derive(Debug, Deserialize)]
struct Container {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Vec<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<BTreeMap<String, String>>,
}

/// A Docker Engine endpoint.
#[derive(Clone, Debug)]
pub(crate) struct Docker {
    socket: PathBuf,
    timeout: Duration,
}

impl Docker {
    pub(crate) fn new(socket: &Path, timeout: Duration) -> Self {
        Self {
            socket: socket.to_owned(),
            timeout,
        }
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every container, running or not.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, RuntimeError> {
        let body = tokio::time::timeout(self.timeout, self.get("/containers/json?all=1"))
            .await
            .map_err(|_| RuntimeError::Timeout {
                endpoint: self.socket.clone(),
            })??;
        let containers: Vec<Container> =
            serde_json::from_slice(&body).map_err(|source| RuntimeError::Decode {
                endpoint: self.socket.clone(),
                source: Box::new(source),
            })?;
        Ok(containers
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                Listed {
                    sandbox: labels.get(DOCKER_TYPE).is_some_and(|t| t == "podsandbox"),
                    id: c.id,
                    name: c
                        .names
                        .first()
                        .map(|n| n.trim_start_matches('/').to_owned()),
                    labels,
                }
            })
            .collect())
    }

    /// One GET over a fresh connection; the body of a 2xx answer.
    async fn get(&self, path: &str) -> Result<Bytes, RuntimeError> {
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| RuntimeError::Unreachable {
                endpoint: self.socket.clone(),
                source,
            };
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| unreachable(Box::new(e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(Box::new(e)))?;
        tokio::spawn(connection);
        let request = Request::get(path)
            .header(HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| unreachable(Box::new(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(Box::new(e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(Box::new(e)))?
            .to_bytes();
        if !status.is_success() {
            return Err(RuntimeError::Status {
                endpoint: self.socket.clone(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body).chars().take(200).collect(),
            });
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A one-shot Engine API stand-in on a unix socket answering `body`.
    async fn serve_once(socket: PathBuf, status: &'static str, body: &'static str) {
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(
                request.starts_with("GET /containers/json?all=1 HTTP/1.1"),
                "{request}"
            );
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
        });
    }

    #[tokio::test]
    async fn lists_containers_with_their_labels() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        serve_once(
            socket.clone(),
            "200 OK",
            r#"[{"Id":"abc","Names":["/k8s_web_web-0"],"Labels":{"io.kubernetes.pod.namespace":"acme"}},
                {"Id":"sb","Names":["/k8s_POD"],"Labels":{"io.kubernetes.docker.type":"podsandbox"}},
                {"Id":"nolabels","Names":[],"Labels":null}]"#,
        )
        .await;
        let listed = Docker::new(&socket, Duration::from_secs(5))
            .list()
            .await
            .unwrap();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].id, "abc");
        assert_eq!(listed[0].name.as_deref(), Some("k8s_web_web-0"));
        assert_eq!(listed[0].labels["io.kubernetes.pod.namespace"], "acme");
        assert!(!listed[0].sandbox);
        assert!(listed[1].sandbox);
        assert!(listed[2].labels.is_empty());
    }

    #[tokio::test]
    async fn errors_name_the_endpoint_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("docker.sock");
        let error = Docker::new(&socket, Duration::from_secs(5))
            .list()
            .await
            .unwrap_err();
        assert!(matches!(error, RuntimeError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains("docker.sock"), "{error}");
        serve_once(socket.clone(), "500 Internal Server Error", "boom").await;
        let error = Docker::new(&socket, Duration::from_secs(5))
            .list()
            .await
            .unwrap_err();
        assert!(
            matches!(error, RuntimeError::Status { status: 500, .. }),
            "{error}"
        );
    }
}
