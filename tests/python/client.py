"""The official Kubernetes Python client against a running wasmkube API server.

Usage: client.py KUBECONFIG

Loads the kubeconfig the server wrote, then creates, lists, watches, patches and deletes a ConfigMap
and a Deployment the way a Python user would. Prints `python client: ok` and exits 0 on success;
any failed check raises, so the exit code is non-zero with a traceback. Run by
tests/e2e/python.rs with the venv's Python (see scripts/test.sh).
"""

import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

NAMESPACE = "default"
LABELS = {"app": "py-demo"}


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def expect_not_found(read, *args):
    try:
        read(*args)
    except ApiException as e:
        check(e.status == 404, f"expected 404, got {e.status}: {e.body}")
        return
    raise AssertionError(f"{read.__name__}{args} should raise NotFound")


def deployment(name):
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=LABELS),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=LABELS),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name="web",
                            image="nginx",
                            ports=[client.V1ContainerPort(container_port=80)],
                        )
                    ]
                ),
            ),
        ),
    )


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    apps = client.AppsV1Api()

    # Create: the responses echo the full objects, with server-set metadata.
    cm = core.create_namespaced_config_map(
        NAMESPACE,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="py-config", labels=LABELS),
            data={"greeting": "hello"},
        ),
    )
    check(cm.metadata.uid, "created ConfigMap has no uid")
    check(cm.metadata.resource_version, "created ConfigMap has no resourceVersion")
    check(cm.data == {"greeting": "hello"}, f"created ConfigMap data: {cm.data}")
    core.create_namespaced_config_map(
        NAMESPACE,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="py-other", labels={"app": "other"}),
            data={"x": "y"},
        ),
    )
    dep = apps.create_namespaced_deployment(NAMESPACE, deployment("py-web"))
    check(dep.spec.replicas == 2, f"created Deployment replicas: {dep.spec.replicas}")
    check(dep.metadata.generation == 1, f"created Deployment generation: {dep.metadata.generation}")

    # List with a label selector: only the labelled objects.
    cms = core.list_namespaced_config_map(NAMESPACE, label_selector="app=py-demo")
    names = sorted(item.metadata.name for item in cms.items)
    check(names == ["py-config"], f"ConfigMaps with app=py-demo: {names}")
    deps = apps.list_namespaced_deployment(NAMESPACE, label_selector="app=py-demo")
    names = sorted(item.metadata.name for item in deps.items)
    check(names == ["py-web"], f"Deployments with app=py-demo: {names}")
    check(
        [i.metadata.name for i in core.list_namespaced_config_map(NAMESPACE, label_selector="app=nope").items] == [],
        "a selector matching nothing should list nothing",
    )

    # Watch from the list's resourceVersion: a patch made before the watch starts is replayed, and
    # one made while it runs arrives live.
    list_rv = cms.metadata.resource_version
    check(list_rv, "the list has no resourceVersion")
    core.patch_namespaced_config_map("py-config", NAMESPACE, {"data": {"greeting": "bonjour"}})
    seen = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        NAMESPACE,
        label_selector="app=py-demo",
        resource_version=list_rv,
        timeout_seconds=5,
    ):
        obj = event["object"]
        seen.append((event["type"], obj.metadata.name, (obj.data or {}).get("greeting")))
        if event["type"] != "MODIFIED":
            continue
        greeting = (obj.data or {}).get("greeting")
        if greeting == "bonjour":
            core.patch_namespaced_config_map("py-config", NAMESPACE, {"data": {"greeting": "hallo"}})
        elif greeting == "hallo":
            w.stop()
    check(("MODIFIED", "py-config", "bonjour") in seen, f"watch missed the replayed patch: {seen}")
    check(("MODIFIED", "py-config", "hallo") in seen, f"watch missed the live patch: {seen}")

    # Delete, then a read is NotFound.
    core.delete_namespaced_config_map("py-config", NAMESPACE)
    core.delete_namespaced_config_map("py-other", NAMESPACE)
    apps.delete_namespaced_deployment("py-web", NAMESPACE)
    expect_not_found(core.read_namespaced_config_map, "py-config", NAMESPACE)
    expect_not_found(apps.read_namespaced_deployment, "py-web", NAMESPACE)

    print("python client: ok")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: client.py KUBECONFIG")
    main(sys.argv[1])
