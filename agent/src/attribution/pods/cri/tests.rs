//! The CRI client against a gRPC server speaking `runtime.v1.RuntimeService` on a unix socket.
use std::{
    convert::Infallible,
    future::{Ready, ready},
    pin::Pin,
    task::{Context, Poll},
};

use tonic::{
    body::Body,
    codegen::http::{Request, Response},
    server::{Grpc, NamedService, UnaryService},
};

use super::*;

#[derive(Clone)]
struct Answer<T>(T);

impl<Q: Send + 'static, T: Clone + Send + 'static> UnaryService<Q> for Answer<T> {
    type Response = T;
    type Future = Ready<Result<tonic::Response<T>, tonic::Status>>;

    fn call(&mut self, _: tonic::Request<Q>) -> Self::Future {
        ready(Ok(tonic::Response::new(self.0.clone())))
    }
}

/// A RuntimeService with fixed answers.
#[derive(Clone)]
struct FakeCri {
    sandboxes: ListPodSandboxResponse,
    containers: ListContainersResponse,
}

impl NamedService for FakeCri {
    const NAME: &'static str = "runtime.v1.RuntimeService";
}

type BoxFuture =
    Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl tower::Service<Request<Body>> for FakeCri {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> BoxFuture {
        let this = self.clone();
        Box::pin(async move {
            Ok(match request.uri().path() {
                LIST_POD_SANDBOX => Grpc::<
                    tonic_prost::ProstCodec<ListPodSandboxResponse, ListPodSandboxRequest>,
                >::new(tonic_prost::ProstCodec::default())
                .unary(Answer(this.sandboxes), request)
                .await,
                LIST_CONTAINERS => Grpc::<
                    tonic_prost::ProstCodec<ListContainersResponse, ListContainersRequest>,
                >::new(tonic_prost::ProstCodec::default())
                .unary(Answer(this.containers), request)
                .await,
                _ => tonic::Status::unimplemented("not here").into_http(),
            })
        })
    }
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn lists_pods_and_containers_with_their_identity() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("containerd.sock");
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let fake = FakeCri {
        sandboxes: ListPodSandboxResponse {
            items: vec![PodSandbox {
                id: "sb1".into(),
                metadata: Some(PodSandboxMetadata {
                    name: "web-0".into(),
                    uid: "uid-1".into(),
                    namespace: "acme-prod".into(),
                }),
                labels: map(&[("tenant", "acme"), (POD_NAMESPACE, "acme-prod")]),
            }],
        },
        containers: ListContainersResponse {
            containers: vec![Container {
                id: "c1".into(),
                pod_sandbox_id: "sb1".into(),
                metadata: Some(ContainerMetadata { name: "web".into() }),
                labels: map(&[(POD_UID, "uid-1")]),
            }],
        },
    };
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(fake)
            .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener)),
    );
    let listed = Cri::new(&socket, Duration::from_secs(5))
        .list()
        .await
        .unwrap();
    let identities = crate::attribution::pods::labels::identities(listed);
    assert_eq!(identities.len(), 1, "the sandbox is no container");
    let web = &identities["c1"];
    let pod = web.container.pod.as_ref().expect("a pod");
    assert_eq!(pod.namespace, "acme-prod");
    assert_eq!(pod.name, "web-0");
    assert_eq!(pod.uid, "uid-1");
    assert_eq!(web.container.name.as_deref(), Some("web"));
    assert_eq!(
        web.pod_labels.get("tenant").map(String::as_str),
        Some("acme")
    );
}

#[tokio::test]
async fn an_absent_socket_is_unreachable() {
    let error = Cri::new(Path::new("/nonexistent/cri.sock"), Duration::from_secs(2))
        .list()
        .await
        .unwrap_err();
    assert!(matches!(error, RuntimeError::Unreachable { .. }), "{error}");
    assert!(
        error.to_string().contains("/nonexistent/cri.sock"),
        "{error}"
    );
}
