//! The API watch against a stand-in API server on 127.0.0.1: the list is asked for this node's
//! pods only, and its containers become identities with the pods' labels.
use std::{
    io::{BufRead, BufReader, Write},
    net::TcpListener,
    sync::mpsc as std_mpsc,
};

use super::*;

const ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

fn pod_list() -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": "10"},
        "items": [{
            "metadata": {
                "name": "web-0",
                "namespace": "acme-prod",
                "uid": "uid-1",
                "labels": {"tenant": "acme"}
            },
            "status": {"containerStatuses": [{
                "name": "web",
                "containerID": format!("containerd://{ID}"),
                "image": "web:1",
                "imageID": "",
                "ready": true,
                "restartCount": 0
            }]}
        }]
    })
    .to_string()
}

/// Answers list requests with [`pod_list`] and watch requests with an empty stream; sends
/// every request line it reads.
fn api_server() -> (String, std_mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let _ = tx.send(first.trim().to_owned());
            let body = if first.contains("watch=true") {
                String::new()
            } else {
                pod_list()
            };
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, rx)
}

#[tokio::test]
async fn this_nodes_pods_name_their_containers() {
    let (url, requests) = api_server();
    let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let directory = PodDirectory::fixed(HashMap::new(), 0);
    let (tx, _rx) = crate::model::handoff::notifier();
    start(client, "node-1", directory.clone(), tx, Counter::default())
        .await
        .unwrap();
    let identity = directory.lookup(ID).expect("the container is known");
    let pod = identity.container.pod.as_ref().unwrap();
    assert_eq!(pod.namespace, "acme-prod");
    assert_eq!(pod.name, "web-0");
    assert_eq!(pod.uid, "uid-1");
    assert_eq!(identity.container.name.as_deref(), Some("web"));
    assert_eq!(
        identity.pod_labels.get("tenant").map(String::as_str),
        Some("acme")
    );
    let list = requests.recv().unwrap();
    assert!(list.starts_with("GET /api/v1/pods?"), "{list}");
    assert!(
        list.contains("fieldSelector=spec.nodeName%3Dnode-1"),
        "only this node's pods: {list}"
    );
}

#[tokio::test]
async fn an_unreachable_api_fails_the_first_sync() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let errors = Counter::default();
    let (tx, _rx) = crate::model::handoff::notifier();
    let directory = PodDirectory::fixed(HashMap::new(), 0);
    let error = start(client, "node-1", directory, tx, errors.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, PodError::ApiSync { .. }), "{error}");
    assert!(errors.get() > 0, "watch errors are counted");
}

#[test]
fn outside_a_pod_there_is_no_in_cluster_config() {
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return;
    }
    let error = in_cluster().err().expect("no in-cluster config here");
    assert!(error.to_string().contains("--kubernetes-api"), "{error}");
}
