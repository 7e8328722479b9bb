//! Tests of the parent module.
use super::*;
use serde_json::json;

fn render(f: impl FnOnce(&mut Writer)) -> String {
    let mut out = Writer::default();
    f(&mut out);
    out.finish()
}

#[test]
fn running_pod_reads_like_kubectl() {
    let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "r", "controller": true}]},
            "spec": {"nodeName": "node-1", "serviceAccountName": "default",
                     "containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]},
            "status": {"phase": "Running", "hostIP": "127.1.1.1", "podIP": "127.64.0.2", "podIPs": [{"ip": "127.64.0.2"}],
                       "qosClass": "BestEffort",
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "web", "image": "nginx", "imageID": "", "ready": true, "restartCount": 0,
                                              "state": {"waiting": {"reason": "ContainerCreating"}}}]}
        }))
        .expect("pod");
    let text = render(|out| describe(out, &pod));
    let expected = "\
Name:             web-1
Namespace:        default
Service Account:  default
Node:             node-1/127.1.1.1
Labels:           app=web
Annotations:      <none>
Status:           Running
IP:               127.64.0.2
IPs:
  IP:           127.64.0.2
Controlled By:  ReplicaSet/web
Containers:
  web:
    Container ID:   
    Image:          nginx
    Image ID:       
    Port:           80/TCP
    Host Port:      0/TCP
    State:          Waiting
      Reason:       ContainerCreating
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:         <none>
Conditions:
  Type           Status
  Ready          True 
Volumes:         <none>
QoS Class:       BestEffort
Node-Selectors:  <none>
Tolerations:     <none>
";
    assert_eq!(text, expected);
}

#[test]
fn probes_and_tolerations_are_summarised() {
    let probe: Probe = serde_json::from_value(
        json!({"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5}),
    )
    .expect("probe");
    assert_eq!(
        describe_probe(&probe),
        "http-get http://:8080/healthz delay=0s timeout=1s period=5s #success=1 #failure=3"
    );
    let tol: Vec<Toleration> = serde_json::from_value(json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"operator": "Exists"}
        ]))
        .expect("tolerations");
    assert_eq!(
        render(|out| tolerations(out, "Tolerations", &tol)),
        "Tolerations:  node.kubernetes.io/not-ready:NoExecute op=Exists for 300s\n              op=Exists\n"
    );
}
