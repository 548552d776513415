"""The deployment files (deploy/): compose.yaml and k8s.yaml checked against JSON schemas of the parts the
deployment relies on (probes, keys from a secret, the collections volume, the ports), the Containerfile's
promises (unprivileged user, entrypoint, health check, volume, no index configuration baked in), and the scripts'
syntax. Fast and offline: no container engine, no cluster. The image itself is built and exercised by
deploy/smoke.sh (`make image-smoke`, many minutes)."""

import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UID = 10001  # the image's user (Containerfile's useradd), which k8s.yaml's securityContext names

# ---------------------------------------------------------------------- schemas of what we rely on

_str_list = {"type": "array", "items": {"type": "string"}, "minItems": 1}

HTTP_PROBE = {
    "type": "object",
    "required": ["httpGet"],
    "properties": {
        "httpGet": {
            "type": "object",
            "required": ["path", "port"],
            "properties": {"path": {"type": "string", "pattern": "^/"}, "port": {"type": ["integer", "string"]}},
        },
        "periodSeconds": {"type": "integer", "minimum": 1},
        "timeoutSeconds": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1},
    },
}

ENV_VAR = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
        "value": {"type": "string"},
        "valueFrom": {
            "type": "object",
            "required": ["secretKeyRef"],
            "properties": {
                "secretKeyRef": {
                    "type": "object",
                    "required": ["name", "key"],
                    "properties": {"name": {"type": "string"}, "key": {"type": "string"}},
                }
            },
        },
    },
    "oneOf": [{"required": ["value"]}, {"required": ["valueFrom"]}],
}

CONTAINER = {
    "type": "object",
    "required": ["name", "image", "ports", "env", "readinessProbe", "livenessProbe", "resources"],
    "properties": {
        "name": {"type": "string"},
        "image": {"type": "string", "minLength": 1},
        "args": _str_list,
        "ports": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "required": ["containerPort"], "properties": {"containerPort": {"type": "integer"}}},
        },
        "env": {"type": "array", "items": ENV_VAR},
        "readinessProbe": HTTP_PROBE,
        "livenessProbe": HTTP_PROBE,
        "startupProbe": HTTP_PROBE,
        "resources": {
            "type": "object",
            "required": ["limits"],
            "properties": {"limits": {"type": "object", "required": ["memory"]}},
        },
        "volumeMounts": {
            "type": "array",
            "items": {"type": "object", "required": ["name", "mountPath"]},
        },
    },
}

_labels = {"type": "object", "additionalProperties": {"type": "string"}, "minProperties": 1}
_metadata = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "pattern": "^[a-z0-9-]+$"}}}


def _object(required: list[str], **properties) -> dict:
    return {"type": "object", "required": required, "properties": properties}


def _resource(api_version: str, spec: dict) -> dict:
    """A Kubernetes object: the envelope every kind shares around its own ``spec``."""
    return _object(["apiVersion", "kind", "metadata", "spec"], apiVersion={"const": api_version}, metadata=_metadata, spec=spec)


_pod = _object(
    ["containers", "securityContext"],
    containers={"type": "array", "minItems": 1, "items": CONTAINER},
    securityContext=_object(["runAsNonRoot", "runAsUser"], runAsNonRoot={"const": True}, runAsUser={"const": UID}),
    volumes={"type": "array", "items": {"type": "object", "required": ["name"]}},
)

K8S = {
    "Deployment": _resource(
        "apps/v1",
        _object(
            ["replicas", "selector", "template"],
            replicas={"type": "integer", "minimum": 1},
            selector=_object(["matchLabels"], matchLabels=_labels),
            template=_object(["metadata", "spec"], metadata=_object(["labels"], labels=_labels), spec=_pod),
        ),
    ),
    "Service": _resource(
        "v1",
        _object(
            ["selector", "ports"],
            selector=_labels,
            ports={"type": "array", "minItems": 1, "items": _object(["port"], port={"type": "integer"})},
        ),
    ),
    "PersistentVolumeClaim": _resource(
        "v1",
        _object(
            ["accessModes", "resources"],
            accessModes=_str_list,
            resources=_object(["requests"], requests=_object(["storage"], storage={"type": "string", "pattern": "^[0-9]+(Ki|Mi|Gi|Ti)$"})),
        ),
    ),
}

COMPOSE_HEALTHCHECK = {
    "type": "object",
    "required": ["test"],
    "properties": {"test": {"type": "array", "items": {"type": "string"}, "minItems": 2, "prefixItems": [{"enum": ["CMD", "CMD-SHELL"]}]}},
}

COMPOSE = {
    "type": "object",
    "required": ["services", "volumes"],
    "properties": {
        "services": {
            "type": "object",
            "required": ["api", "ui"],
            "additionalProperties": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {"type": "string", "minLength": 1},
                    "command": {"type": ["array", "string"]},
                    "entrypoint": {"type": ["array", "string"]},
                    "environment": {"type": "object", "additionalProperties": {"type": "string"}},
                    "ports": {"type": "array", "items": {"type": "string", "pattern": r"^\d+:\d+$"}},
                    "volumes": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z0-9_-]+:/"}},
                    "healthcheck": COMPOSE_HEALTHCHECK,
                    "depends_on": {"type": ["object", "array"]},
                    "profiles": _str_list,
                },
            },
            "properties": {
                "api": {"required": ["environment", "ports", "volumes", "healthcheck"]},
                "ui": {"required": ["environment", "ports", "healthcheck", "depends_on"]},
            },
        },
        "volumes": {"type": "object"},
    },
}


# ---------------------------------------------------------------------- loading


def k8s_docs() -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / "k8s.yaml").read_text()) if d]


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def by_kind(kind: str) -> list[dict]:
    return [d for d in k8s_docs() if d["kind"] == kind]


def deployment(component: str) -> dict:
    (d,) = [d for d in by_kind("Deployment") if d["metadata"]["labels"].get("app.kubernetes.io/component") == component]
    return d


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


# ---------------------------------------------------------------------- Kubernetes


def test_k8s_manifests_match_the_schemas():
    docs = k8s_docs()
    assert {d["kind"] for d in docs} == {"Deployment", "Service", "PersistentVolumeClaim"}
    for doc in docs:
        jsonschema.validate(doc, K8S[doc["kind"]])


def test_k8s_api_probes_keys_and_collections_volume():
    api = deployment("api")
    (container,) = api["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = env_of(container)
    assert "value" not in env["ASSISTANT_API_KEYS"], "API keys come from a Secret, never inline"
    assert env["ASSISTANT_API_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "domain-assistant-keys"
    assert env["ASSISTANT_API__HOST"]["value"] == "0.0.0.0"
    # The collections live on the claim, mounted where ASSISTANT_INDEX_DIR points.
    (pvc,) = by_kind("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in api["spec"]["template"]["spec"]["volumes"]}
    (mount,) = container["volumeMounts"]
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
    assert env["ASSISTANT_INDEX_DIR"]["value"].startswith(mount["mountPath"].rstrip("/") + "/")
    # One writer on a ReadWriteOnce volume: one replica, and the old pod goes before the new one starts.
    if "ReadWriteOnce" in pvc["spec"]["accessModes"]:
        assert api["spec"]["replicas"] == 1 and api["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_ui_talks_to_the_api_service_with_a_key_from_the_secret():
    (container,) = deployment("ui")["spec"]["template"]["spec"]["containers"]
    env = env_of(container)
    api_service = [s for s in by_kind("Service") if s["spec"]["selector"].get("app.kubernetes.io/component") == "api"][0]
    port = api_service["spec"]["ports"][0]["port"]
    assert env["ASSISTANT_UI__API_URL"]["value"] == f"http://{api_service['metadata']['name']}:{port}"
    assert env["ASSISTANT_UI__API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "domain-assistant-keys"
    assert container["args"][0] == "ui" and "0.0.0.0" in container["args"]


def test_k8s_services_select_their_deployments_and_named_ports():
    deployments = by_kind("Deployment")
    for service in by_kind("Service"):
        selector = service["spec"]["selector"]
        (target,) = [d for d in deployments if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert target["spec"]["selector"]["matchLabels"].items() <= target["spec"]["template"]["metadata"]["labels"].items()
        (container,) = target["spec"]["template"]["spec"]["containers"]
        port_names = {p.get("name") for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] in port_names


def test_k8s_manifests_pass_kubernetes_validate_where_installed():
    """The full Kubernetes schemas (kubernetes-validate ships them; it runs offline), strict: unknown fields fail."""
    kv = pytest.importorskip("kubernetes_validate")
    for doc in k8s_docs():
        kv.validate(doc, kv.latest_version(), strict=True)


def test_schema_catches_a_missing_probe():
    broken = deployment("api")
    del broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, K8S["Deployment"])


# ---------------------------------------------------------------------- compose


def test_compose_matches_the_schema():
    jsonschema.validate(compose(), COMPOSE)


def test_compose_api_keys_from_environment_healthcheck_and_volume():
    doc = compose()
    api, ui = doc["services"]["api"], doc["services"]["ui"]
    # ${VAR:?message}: compose refuses to start without keys instead of serving with none.
    assert re.fullmatch(r"\$\{ASSISTANT_API_KEYS:\?.+\}", api["environment"]["ASSISTANT_API_KEYS"])
    assert re.fullmatch(r"\$\{ASSISTANT_UI__API_KEY:\?.+\}", ui["environment"]["ASSISTANT_UI__API_KEY"])
    assert any("/readyz" in part for part in api["healthcheck"]["test"])
    volume, mount = api["volumes"][0].split(":", 1)
    assert volume in doc["volumes"]
    assert api["environment"]["ASSISTANT_INDEX_DIR"].startswith(mount.rstrip("/") + "/")
    assert ui["environment"]["ASSISTANT_UI__API_URL"] == "http://api:8000"
    assert ui["depends_on"]["api"]["condition"] == "service_healthy"


# ---------------------------------------------------------------------- Containerfile and scripts


def containerfile() -> str:
    return (DEPLOY / "Containerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


def test_containerfile_final_stage():
    steps = instructions(containerfile())
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    ops = {op: args for op, args in final}  # the last of each in the final stage
    assert ops["USER"] not in ("root", "0")
    assert f"--uid {UID}" in containerfile()
    assert ops["ENTRYPOINT"] == '["assistant"]' and ops["CMD"] == '["serve"]'
    assert "/readyz" in ops["HEALTHCHECK"]
    assert '"/data"' in ops["VOLUME"]
    assert "8000" in ops["EXPOSE"].split()
    env = " ".join(args for op, args in final if op == "ENV")
    assert "ASSISTANT_INDEX_DIR=/data/" in env and "ASSISTANT_API__HOST=0.0.0.0" in env and "HF_HUB_OFFLINE=1" in env
    assert "ASSISTANT_API_KEYS" not in env, "keys come from the environment at run time"


def test_containerfile_bakes_in_no_package_index_configuration():
    steps = instructions(containerfile())
    for op, args in steps:
        if op in ("ENV", "ARG"):
            assert not re.search(r"PIP_(INDEX|EXTRA_INDEX|FIND_LINKS|CONFIG_FILE|CERT)", args), args
        if op in ("COPY", "ADD"):
            assert "pip.conf" not in args
    pip_runs = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert pip_runs and all("--mount=type=secret,id=pipconf" in args for args in pip_runs)


def test_containerfile_builds_llama_cpp_with_the_makefiles_flags():
    makefile = (ROOT / "Makefile").read_text()
    flags = re.search(r"^LLAMA_CFLAGS := (.+)$", makefile, re.M).group(1).strip()
    text = containerfile()
    assert f'ARG LLAMA_CFLAGS="{flags}"' in text
    assert "-DLLAVA_BUILD=OFF" in text and "--no-binary llama-cpp-python" in text


def test_build_context_leaves_out_the_virtual_environment():
    ignored = (ROOT / ".containerignore").read_text().split()
    assert {".venv", ".git", "build", "indexes"} <= set(ignored)


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^image:", makefile, re.M) and re.search(r"^image-smoke:", makefile, re.M)


@pytest.mark.parametrize("script", ["build-image.sh", "smoke.sh"])
def test_scripts_parse(script):
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash")
    subprocess.run([bash, "-n", str(DEPLOY / script)], check=True)
