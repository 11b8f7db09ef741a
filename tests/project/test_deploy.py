"""deploy/kubernetes: every manifest parses and validates offline against a pinned Kubernetes (strict
schemas: an unknown field is an error), and agrees with baton itself — env vars are real settings with
values baton accepts, Secret and ConfigMap references name objects the kustomization defines (and keys
they hold), probes hit routes the service has (and answer without a token), commands parse with the
real CLI, Secrets carry no data, pods are non-root with read-only roots and a writable BATON_HOME, and
the workers get one PersistentVolumeClaim each. A typo in a manifest fails one of these.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import importlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import typer.main
import yaml
from typer.exceptions import TyperException

from baton.agents.claude import ClaudeAgent
from baton.agents.codex import CodexAgent
from baton.agents.gemini import GeminiAgent
from baton.cli.app import app as cli_app
from baton.forge.data.model import ForgeKind
from baton.forge.kinds.configured import load_forges
from baton.service import webhooks
from baton.service.app import create_app
from baton.settings import FORGE_CONFIG_ENV, Settings, load_settings, parse_size
from baton.workspace.workdirs import ASKPASS
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
DOCS = ROOT / "docs" / "deploy.md"
K8S_VERSION = "1.32.0"  # the oldest Kubernetes the manifests promise to work on
# The image `make image` builds (deploy/image/build.sh's default); the kustomization's `images` renames it.
IMAGE = re.findall(r"IMAGE=\$\{IMAGE:-([^}]+)\}", (ROOT / "deploy" / "image" / "build.sh").read_text())[0]
ENTRYPOINT = ["/usr/bin/tini", "--", "baton"]  # tini reaps the agents' orphans as PID 1 (deploy/Dockerfile)
# Not baton settings, each set for a reason: the read-only root file system needs a writable $HOME.
OTHER_ENV = {"HOME"}
CHECKPOINT_BUDGET = 120  # seconds a stopping worker may need to checkpoint and snapshot its runs
RUN_MEMORY = 768 * 2**20  # a worker's memory request covers this per concurrent run (a Node agent CLI)
SECRET_NAME = re.compile(r"URL|SECRET|TOKEN|KEY|PASSWORD|USERNAME", re.IGNORECASE)

Doc = dict[str, Any]


# -- loading ----------------------------------------------------------------------------------------


def kustomization() -> Doc:
    doc: Doc = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    return doc


def manifests() -> list[tuple[str, Doc]]:
    """(file, object) for every object of every resource the kustomization lists, in its order."""
    found = []
    for name in kustomization()["resources"]:
        for doc in yaml.safe_load_all((DEPLOY / name).read_text()):
            if doc is not None:
                found.append((name, doc))
    return found


def objects(kind: str) -> list[Doc]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def pod_template(doc: Doc) -> Doc | None:
    """The pod template of a workload (Deployment, StatefulSet, Job, CronJob), None for the rest."""
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Doc | None = spec.get("template") if doc["kind"] != "PodDisruptionBudget" else None
    return template


def workloads() -> Iterator[tuple[Doc, Doc]]:
    """(workload, pod spec) for every workload."""
    for _, doc in manifests():
        template = pod_template(doc)
        if template is not None:
            yield doc, template["spec"]


def containers() -> Iterator[tuple[Doc, Doc, Doc]]:
    """(workload, pod spec, container) for every container and init container."""
    for doc, spec in workloads():
        for container in spec.get("initContainers", []) + spec["containers"]:
            yield doc, spec, container


def config_maps() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc.get("data") or {} for doc in objects("ConfigMap")}


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a kustomize env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: {line!r} is not KEY=VALUE"
            pairs[key.strip()] = value
    return pairs


def generated_config_maps() -> dict[str, dict[str, str]]:
    """ConfigMap name → its data, from the committed files the kustomization's generator reads."""
    maps: dict[str, dict[str, str]] = {}
    for gen in kustomization().get("configMapGenerator", []):
        assert set(gen) == {"name", "files"}, gen
        maps[gen["name"]] = {Path(f).name: (DEPLOY / f).read_text() for f in gen["files"]}
    return maps


def generated_secrets() -> dict[str, dict[str, str]]:
    """Secret name → its keys (from the committed .example of each env file the generator reads)."""
    secrets: dict[str, dict[str, str]] = {}
    for gen in kustomization().get("secretGenerator", []):
        keys: dict[str, str] = {}
        for env in gen.get("envs", []):
            keys |= env_file(DEPLOY / (env + ".example"))
        secrets[gen["name"]] = keys
    return secrets


def container_env(container: Doc) -> dict[str, str]:
    """The environment baton sees from plain values: the ConfigMaps of envFrom, then literal env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= config_maps()[source["configMapRef"]["name"]]
    env |= {var["name"]: var["value"] for var in container.get("env", []) if "value" in var}
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of command and args."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), arg)


def quantity(text: str | int) -> int:
    """A Kubernetes quantity (``50Gi``, ``512Mi``, ``2``, ``250m``) in bytes or units."""
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|m)?", str(text))
    assert match, f"not a quantity: {text!r}"
    number, unit = float(match.group(1)), match.group(2)
    return int(number / 1000) if unit == "m" else int(number * units.get(unit or "", 1))


def by_component(component: str) -> tuple[Doc, Doc]:
    for doc, spec in workloads():
        if doc["metadata"]["labels"]["app.kubernetes.io/component"] == component:
            return doc, spec
    raise AssertionError(f"no workload of component {component!r}")


# -- the kustomization ------------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_nothing_else() -> None:
    k = kustomization()
    assert k["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and k["kind"] == "Kustomization"
    on_disk = sorted(p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(k["resources"]) == on_disk
    assert len(set(k["resources"])) == len(k["resources"])
    assert k["namespace"] == "baton" and objects("Namespace")[0]["metadata"]["name"] == "baton"
    for _, doc in manifests():
        assert doc["metadata"].get("namespace", "baton") == "baton", doc["metadata"]["name"]


def test_every_object_is_unique_by_kind_and_name() -> None:
    seen = [(doc["kind"], doc["metadata"]["name"]) for _, doc in manifests()]
    assert len(seen) == len(set(seen)), seen


def test_the_image_is_set_in_one_place() -> None:
    repository, _, tag = IMAGE.partition(":")
    assert kustomization()["images"] == [{"name": repository, "newName": repository, "newTag": tag}]
    images = {c["name"]: c["image"] for _, _, c in containers()}
    assert images and set(images.values()) == {IMAGE}, images


# -- offline validation -----------------------------------------------------------------------------

MANIFESTS = manifests()


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in MANIFESTS],
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in MANIFESTS],
)
def test_every_manifest_validates_strictly_against_the_pinned_kubernetes(doc: Doc) -> None:
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == "1.32"


@pytest.mark.parametrize(
    "path, value",
    [
        (["spec", "template", "spec", "containers", 0, "readinesProbe"], {"httpGet": {"path": "/readyz"}}),
        (["spec", "replicas"], "two"),
        (["spec", "template", "spec", "securityContext", "runAsNonRot"], True),
    ],
    ids=["misspelt-field", "wrong-type", "misspelt-nested-field"],
)
def test_validation_refuses_a_typo(path: list[Any], value: Any) -> None:
    """The harness itself: strict validation really fails a misspelt field or a wrong type."""
    doc = copy.deepcopy(next(d for d in objects("Deployment")))
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# -- env vars and references -------------------------------------------------------------------------


def baton_env_names() -> set[str]:
    """Every variable baton reads: its settings, the webhook secret, git's askpass, agent credentials."""
    names = {f"BATON_{f.name.upper()}" for f in dataclasses.fields(Settings) if f.name != "extra"}
    names |= {webhooks.SECRET_ENV, FORGE_CONFIG_ENV}
    names |= set(re.findall(r"\$\{(BATON_[A-Z_]+)", ASKPASS))
    names |= {name for agent in (ClaudeAgent, CodexAgent, GeminiAgent) for name in agent.credentials}
    return names


def test_every_env_var_the_manifests_set_is_one_baton_reads() -> None:
    known = baton_env_names() | OTHER_ENV
    assert {"BATON_GIT_TOKEN", "BATON_WEBHOOK_SECRET", "BATON_HOME"} <= known  # the lookup works
    for doc, _, container in containers():
        names = set(container_env(container)) | {var["name"] for var in container.get("env", [])}
        assert names <= known, f"{doc['metadata']['name']}: not read by baton: {sorted(names - known)}"
    for name, data in config_maps().items():
        assert set(data) <= baton_env_names(), f"ConfigMap {name}: {sorted(set(data) - baton_env_names())}"
    for name, keys in generated_secrets().items():
        known = FORGE_CREDENTIALS if name == "baton-forge" else baton_env_names()
        assert set(keys) <= known, f"Secret {name}: {sorted(set(keys) - known)}"


# The forges' credentials (secrets/forge.env): each kind's default token_env, and the variable the
# example names for a GitHub App's key (private_key_env). forge.toml may name others: they go in the
# same Secret, which reaches the pods whole (envFrom).
FORGE_CREDENTIALS = {f"BATON_{kind.value.upper()}_TOKEN" for kind in ForgeKind} | {"BATON_GITHUB_APP_KEY"}


def test_baton_accepts_every_value_the_manifests_set() -> None:
    """load_settings over each container's plain environment: a bad number or size is refused, and
    every BATON_* value really takes effect."""
    fields = {f.name for f in dataclasses.fields(Settings)} - {"home", "extra"}
    for doc, _, container in containers():
        env = container_env(container)
        settings = load_settings(environ=env)
        assert str(settings.home) == env["BATON_HOME"], doc["metadata"]["name"]
        for key, value in env.items():
            name = key.removeprefix("BATON_").lower()
            if key.startswith("BATON_") and name in fields:
                got = getattr(settings, name)
                assert got == type(got)(value), f"{doc['metadata']['name']}: {key}={value!r} gave {got!r}"


def references(container: Doc, spec: Doc) -> Iterator[tuple[str, str, str | None, bool]]:
    """(kind, name, key or None, optional) for every Secret and ConfigMap a container or pod uses."""
    for var in container.get("env", []):
        for field, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            ref = var.get("valueFrom", {}).get(field)
            if ref:
                yield kind, ref["name"], ref["key"], bool(ref.get("optional"))
    for source in container.get("envFrom", []):
        for field, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if field in source:
                yield kind, source[field]["name"], None, bool(source[field].get("optional"))
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None, False
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None, False


def test_every_secret_and_config_map_reference_names_an_object_and_key_the_kustomization_defines() -> None:
    defined = {"Secret": generated_secrets(), "ConfigMap": config_maps() | generated_config_maps()}
    count = 0
    for doc, spec, container in containers():
        for kind, name, key, _ in references(container, spec):
            where = f"{doc['metadata']['name']}: {kind} {name}"
            assert name in defined[kind], f"{where} is not defined"
            assert key is None or key in defined[kind][name], f"{where} has no key {key}"
            count += 1
    assert count >= 10


def test_each_secret_env_var_reads_the_key_of_its_own_name() -> None:
    """A mix-up (BATON_REDIS_URL reading the broker's key) fails here."""
    for _, _, container in containers():
        for var in container.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] == var["name"], var


def test_the_store_and_broker_urls_are_required_where_baton_needs_them() -> None:
    """Without BATON_STORE_URL a pod would quietly use SQLite on its own disk; without a broker, the API
    would run agents itself. Both must be mandatory references (a missing Secret stops the pod)."""
    needs = {
        "api": {"BATON_STORE_URL", "BATON_BROKER_URL"},
        "worker": {"BATON_STORE_URL", "BATON_BROKER_URL"},
    }
    needs["sweep"] = {"BATON_STORE_URL"}
    for component, names in needs.items():
        _, spec = by_component(component)
        env = {var["name"]: var for var in spec["containers"][0].get("env", [])}
        for name in names:
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert not ref.get("optional"), f"{component}: {name} must not be optional"


def test_no_secret_carries_literal_data() -> None:
    assert objects("Secret") == [], "Secrets come from the generator's git-ignored files, not manifests"
    for gen in kustomization()["secretGenerator"]:
        assert set(gen) <= {"name", "envs"}, f"{gen['name']}: literals or files would put data in git"
        for env in gen["envs"]:
            assert _ignored(DEPLOY / env), f"{env} is not ignored by git"
            assert not _tracked(DEPLOY / env), f"{env} is committed"
            example = env_file(DEPLOY / (env + ".example"))
            assert example and all(v == "" for v in example.values()), f"{env}.example holds values"


def _ignored(path: Path) -> bool:
    done = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", str(path)], check=False)
    return done.returncode == 0


def _tracked(path: Path) -> bool:
    done = subprocess.run(["git", "-C", str(ROOT), "ls-files", str(path)], capture_output=True, check=True)
    return bool(done.stdout.strip())


def test_nothing_secret_is_set_as_a_plain_value() -> None:
    secret_names = {key for keys in generated_secrets().values() for key in keys}
    for doc, _, container in containers():
        for name, value in container_env(container).items():
            assert name not in secret_names and not SECRET_NAME.search(name), f"{name} set in plain text"
            assert not re.search(r"://[^/\s]*@", value), f"{doc['metadata']['name']}: {name} carries a login"


# -- routes, ports and commands ------------------------------------------------------------------------


def app_get_routes(tmp_path: Path) -> set[str]:
    """The GET routes of the service (from its OpenAPI document: FastAPI nests included routers)."""
    fastapi_app = create_app(load_settings(environ={"BATON_HOME": str(tmp_path)}))
    return {path for path, ops in fastapi_app.openapi()["paths"].items() if "get" in ops}


def probes(container: Doc) -> dict[str, Doc]:
    return {
        kind: container[kind]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if kind in container
    }


def test_probes_and_the_metrics_annotation_hit_routes_the_service_has(tmp_path: Path) -> None:
    routes = app_get_routes(tmp_path)
    doc, spec = by_component("api")
    container = spec["containers"][0]
    found = probes(container)
    assert found["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert found["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for kind, probe in found.items():
        assert probe["httpGet"]["path"] in routes, kind
        assert probe["httpGet"]["port"] in ports, f"{kind} names no container port"
    annotations = doc["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] in routes
    assert int(annotations["prometheus.io/port"]) == ports["http"]
    args = container["args"]
    assert int(args[args.index("--port") + 1]) == ports["http"], "baton serve listens on another port"


def test_the_probed_routes_answer_200_without_a_token(service: Service) -> None:
    _, spec = by_component("api")
    for kind, probe in probes(spec["containers"][0]).items():
        assert httpx.get(service.url + probe["httpGet"]["path"]).status_code == 200, kind


def cli_command(argv: list[str]) -> tuple[Any, list[str], str]:
    """The click command ``argv`` names (walking groups), the rest of argv, its path ("tokens create")."""
    node: Any = typer.main.get_command(cli_app)
    path: list[str] = []
    rest = list(argv)
    while hasattr(node, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        path.append(name)
        assert name in node.commands, f"`baton {' '.join(path)}` is not a baton command"
        node = node.commands[name]
    return node, rest, " ".join(path)


def check_cli(argv: list[str]) -> str:
    """Parse ``argv`` (after ``baton``) with the real CLI."""
    command, rest, path = cli_command(argv)
    command.make_context(f"baton {path}", rest)  # a usage error (unknown option, bad value) raises
    return path


def test_every_container_runs_a_real_baton_command_with_flags_it_accepts() -> None:
    expected = {"Deployment": "serve", "StatefulSet": "worker", "CronJob": "sweep"}
    for doc, _, container in containers():
        assert container["command"] == ENTRYPOINT
        args = [expand(arg, container_env(container)) for arg in container["args"]]
        assert not any("$(" in arg for arg in args), f"unresolved variable in {args}"
        assert check_cli(args) == expected[doc["kind"]]
    _, spec = by_component("worker")
    args = [expand(a, container_env(spec["containers"][0])) for a in spec["containers"][0]["args"]]
    assert int(args[args.index("--concurrency") + 1]) >= 1


def test_check_cli_refuses_what_baton_does_not_know() -> None:
    for argv in (
        ["serv"],
        ["serve", "--hots", "0.0.0.0"],
        ["serve", "--port", "http"],
        ["worker", "--threads", "2"],
    ):
        with pytest.raises((AssertionError, TyperException)):
            check_cli(argv)
    assert check_cli(["tokens", "create", "--name", "x", "--scope", "run"]) == "tokens create"


def shell_blocks(text: str) -> Iterator[str]:
    """The commands of each shell code block (```sh, ```bash, ```console or a bare ```) of a Markdown
    text, one a line; a line ending in a backslash is joined with the next, as the shell does."""
    language: str | None = None
    held = ""
    for line in text.splitlines():
        if line.startswith("```"):
            language = line[3:].strip() if language is None else None
        elif language in ("sh", "bash", "console", ""):
            if line.endswith("\\"):
                held += line[:-1]
                continue
            yield held + line
            held = ""


def docs_commands() -> list[list[str]]:
    """Every ``baton ...`` command in docs/deploy.md's shell blocks (also after ``kubectl exec ... --``)."""
    found = []
    for line in shell_blocks(DOCS.read_text()):
        words = shlex.split(line, comments=True)
        starts = [i + 1 for i, w in enumerate(words) if w == "--" and words[i + 1 : i + 2] == ["baton"]]
        for start in ([0] if words[:1] == ["baton"] else []) + starts:
            found.append(words[start + 1 :])
    return found


def test_the_baton_commands_in_docs_deploy_md_are_real() -> None:
    commands = docs_commands()
    assert any(c[:2] == ["tokens", "create"] for c in commands), "the docs show how to create a token"
    assert ["sweep"] in commands
    for argv in commands:
        check_cli(argv)


# -- the pods themselves ----------------------------------------------------------------------------


def test_pods_run_as_non_root_with_a_read_only_root_and_no_privileges() -> None:
    accounts = {doc["metadata"]["name"] for doc in objects("ServiceAccount")}
    for doc, spec in workloads():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] >= 1000 and pod["runAsGroup"] >= 1000
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False and spec["serviceAccountName"] in accounts
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), doc["metadata"]["name"]
    for doc, _, container in containers():
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"] is True
        assert ctx["capabilities"] == {"drop": ["ALL"]} and not ctx.get("privileged")
        assert ctx.get("runAsUser", 1) != 0, doc["metadata"]["name"]


def mounts(container: Doc) -> dict[str, Doc]:
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def test_baton_home_tmp_and_home_are_writable_volumes_at_one_path_everywhere() -> None:
    homes = {data["BATON_HOME"] for data in config_maps().values() if "BATON_HOME" in data}
    assert len(homes) == 1, (
        "one BATON_HOME for every pod: worktree (and Claude transcript) paths depend on it"
    )
    for doc, spec, container in containers():
        env, found = container_env(container), mounts(container)
        volumes = {v["name"] for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])}
        assert env["BATON_HOME"] in homes
        for path in (env["BATON_HOME"], "/tmp", env["HOME"]):
            assert path in found and not found[path].get("readOnly"), f"{doc['metadata']['name']}: {path}"
        for mount in found.values():
            assert mount["name"] in volumes | claims, f"{doc['metadata']['name']}: no volume {mount['name']}"


def test_each_worker_gets_its_own_claim_for_baton_home_and_nothing_shares_one() -> None:
    worker, spec = by_component("worker")
    assert worker["kind"] == "StatefulSet"
    home = mounts(spec["containers"][0])[config_maps()["baton-config"]["BATON_HOME"]]["name"]
    claims = {c["metadata"]["name"]: c["spec"] for c in worker["spec"]["volumeClaimTemplates"]}
    assert home in claims and home not in {v["name"] for v in spec.get("volumes", [])}
    assert claims[home]["accessModes"] == ["ReadWriteOnce"]
    for doc, pod in workloads():
        assert not any("persistentVolumeClaim" in v for v in pod.get("volumes", [])), doc["metadata"]["name"]


def test_the_worker_volume_holds_the_quota_and_the_free_space_baton_keeps() -> None:
    worker, _ = by_component("worker")
    size = quantity(worker["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"])
    data = config_maps()["baton-config"]
    assert parse_size(data["BATON_DISK_QUOTA"]) + parse_size(data["BATON_MIN_FREE"]) <= size


def test_every_container_states_its_resources_and_workers_have_memory_for_their_runs() -> None:
    for doc, _, container in containers():
        res = container["resources"]
        assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], doc["metadata"][
            "name"
        ]
        assert quantity(res["requests"]["memory"]) <= quantity(res["limits"]["memory"])
    _, spec = by_component("worker")
    container = spec["containers"][0]
    concurrency = int(container_env(container)["BATON_CONCURRENCY"])
    assert quantity(container["resources"]["requests"]["memory"]) >= concurrency * RUN_MEMORY


def test_shutdown_gives_runs_time_to_checkpoint_and_the_api_time_to_drain() -> None:
    _, spec = by_component("worker")
    kill_grace = float(container_env(spec["containers"][0])["BATON_KILL_GRACE"])
    assert spec["terminationGracePeriodSeconds"] >= kill_grace + CHECKPOINT_BUDGET
    _, api = by_component("api")
    sleep = api["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    serve = (ROOT / "src" / "baton" / "cli" / "serve.py").read_text()
    match = re.search(r"timeout_graceful_shutdown=(\d+)", serve)
    assert match, "baton serve no longer states uvicorn's graceful shutdown"
    uvicorn_grace = int(match.group(1))
    assert api["terminationGracePeriodSeconds"] > sleep + uvicorn_grace


# -- the forge loop ----------------------------------------------------------------------------------


def test_the_forge_configuration_and_credentials_reach_the_api_and_the_workers() -> None:
    """ConfigMap baton-forge (forge.toml) mounted read-only where BATON_FORGE_CONFIG points, and every key
    of Secret baton-forge (forge.env) in the environment, in the API's pods and the workers' alike."""
    (key,) = generated_config_maps()["baton-forge"]
    for component in ("api", "worker"):
        _, spec = by_component(component)
        container = spec["containers"][0]
        path = Path(container_env(container)[FORGE_CONFIG_ENV])
        assert path.is_absolute() and path.name == key, component
        [volume] = [v for v in spec["volumes"] if v.get("configMap", {}).get("name") == "baton-forge"]
        mount = mounts(container)[str(path.parent)]
        assert mount["name"] == volume["name"] and mount.get("readOnly") is True, component
        assert {"secretRef": {"name": "baton-forge", "optional": True}} in container["envFrom"], component
        git = {var["name"] for var in container["env"] if "valueFrom" in var}
        assert {"BATON_GIT_TOKEN", "BATON_GIT_USERNAME"} <= git, f"{component}: git's clone credentials"
    _, sweep = by_component("sweep")
    assert FORGE_CONFIG_ENV not in container_env(sweep["containers"][0])  # nothing mounted there


def test_forge_toml_loads_as_committed_and_as_its_example_pasted(tmp_path: Path) -> None:
    text = (DEPLOY / "forge.toml").read_text()
    empty = load_forges(tmp_path, environ={FORGE_CONFIG_ENV: str(DEPLOY / "forge.toml")})
    assert empty.forges == {} and empty.repos == {}  # as committed: no forge, and no error
    pasted = tmp_path / "pasted.toml"
    pasted.write_text(re.sub(r"^# (\[|[a-z_]+ = )", r"\1", text, flags=re.MULTILINE))
    loaded = load_forges(tmp_path, environ={FORGE_CONFIG_ENV: str(pasted)})
    assert set(loaded.forges) == {"github"} and len(loaded.repos) == 1
    assert loaded.forges["github"].token_env in FORGE_CREDENTIALS
    app = tmp_path / "app.toml"  # a GitHub App whose key is forge.env's BATON_GITHUB_APP_KEY
    app.write_text('[forge.github]\napp_id = 1\nprivate_key_env = "BATON_GITHUB_APP_KEY"\n')
    assert load_forges(tmp_path, environ={FORGE_CONFIG_ENV: str(app)}).forges["github"].app is not None


# -- selectors --------------------------------------------------------------------------------------


def selects(selector: Doc, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def pod_labels() -> list[tuple[Doc, dict[str, str]]]:
    return [(doc, (pod_template(doc) or {})["metadata"]["labels"]) for doc, _ in workloads()]


def test_workload_selectors_match_their_own_pods() -> None:
    for doc, labels in pod_labels():
        if doc["kind"] != "CronJob":
            assert selects(doc["spec"]["selector"], labels), doc["metadata"]["name"]


def test_services_policies_and_budgets_select_pods_that_exist() -> None:
    for doc in objects("Service") + objects("PodDisruptionBudget") + objects("NetworkPolicy"):
        selector = doc["spec"].get("podSelector") or doc["spec"].get("selector")
        if doc["kind"] == "Service":
            selector = {"matchLabels": selector}
        matched = [w for w, labels in pod_labels() if selects(selector, labels)]
        assert matched, f"{doc['kind']} {doc['metadata']['name']} selects no pod"
        names = {p.get("name") for w in matched for c in containers_of(w) for p in c.get("ports", [])}
        for port in doc["spec"].get("ports", []) + [
            p for r in doc["spec"].get("ingress", []) for p in r["ports"]
        ]:
            target = port.get("targetPort", port.get("port"))
            assert target in names, f"{doc['metadata']['name']}: port {target} is no named container port"


def containers_of(doc: Doc) -> list[Doc]:
    template = pod_template(doc)
    assert template is not None
    found: list[Doc] = template["spec"]["containers"]
    return found


def test_the_statefulset_is_governed_by_a_headless_service_of_its_pods() -> None:
    worker, _ = by_component("worker")
    services = {s["metadata"]["name"]: s["spec"] for s in objects("Service")}
    governing = services[worker["spec"]["serviceName"]]
    assert governing["clusterIP"] == "None"
    assert governing["selector"] == worker["spec"]["selector"]["matchLabels"]


# -- the trial fleet: deploy/fleet (an overlay) and what podman runs of it (deploy/fleet/render.py) -----

FLEET = ROOT / "deploy" / "fleet"
_spec = importlib.util.spec_from_file_location("fleet_render", FLEET / "render.py")
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = render  # its dataclass looks its module up
_spec.loader.exec_module(render)
FLEET_PODS = {
    "baton-api-0",
    "baton-worker-0",
    "baton-worker-1",
    "baton-postgres-0",
    "baton-redis-0",
    "baton-rabbitmq-0",
}


def example_secrets(directory: Path) -> Path:
    """The env files every generator of the overlay and its base reads, from the committed examples
    (made as ``render.py secrets`` makes them, for the ones without an example)."""
    directory.mkdir(exist_ok=True)
    for example in [*(DEPLOY / "secrets").glob("*.env.example"), *(FLEET / "secrets").glob("*.env.example")]:
        (directory / example.name.removesuffix(".example")).write_text(example.read_text())
    return directory


@pytest.fixture
def fleet_docs(tmp_path: Path) -> list[Doc]:
    docs: list[Doc] = render.build(FLEET, example_secrets(tmp_path / "secrets"))
    return docs


def test_the_overlay_and_its_services_validate_strictly_against_the_pinned_kubernetes(
    fleet_docs: list[Doc],
) -> None:
    kinds = {doc["kind"] for doc in fleet_docs}
    assert {"Deployment", "StatefulSet", "CronJob", "Secret", "ConfigMap", "PersistentVolumeClaim"} <= kinds
    for doc in fleet_docs:
        assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True) == "1.32", doc["metadata"]["name"]


def test_the_renderer_builds_the_base_as_these_tests_read_it(tmp_path: Path) -> None:
    """render.build of deploy/kubernetes: the manifests the tests above check, plus the generated objects."""
    built = render.build(DEPLOY, example_secrets(tmp_path / "secrets"))
    names = {(d["kind"], d["metadata"]["name"]) for d in built}
    assert names == {(d["kind"], d["metadata"]["name"]) for _, d in manifests()} | {
        ("Secret", name) for name in generated_secrets()
    } | {("ConfigMap", name) for name in generated_config_maps()}
    assert all(d["metadata"].get("namespace") == "baton" for d in built if d["kind"] != "Namespace")
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "baton" for d in built)


def test_the_overlay_changes_only_what_a_one_host_fleet_needs(fleet_docs: list[Doc]) -> None:
    base = {(d["kind"], d["metadata"]["name"]): d for _, d in manifests()}
    fleet = {(d["kind"], d["metadata"]["name"]): d for d in fleet_docs}
    assert set(base) <= set(fleet)
    api = fleet["Deployment", "baton-api"]["spec"]["template"]["spec"]
    assert api["hostNetwork"] is True and api["containers"][0]["args"][-1] == "28765"
    worker = fleet["StatefulSet", "baton-worker"]
    assert worker["spec"]["template"]["spec"]["hostNetwork"] is True
    assert (
        worker["spec"]["volumeClaimTemplates"]
        == base["StatefulSet", "baton-worker"]["spec"]["volumeClaimTemplates"]
    )
    for kind, name in set(base) - {
        ("Deployment", "baton-api"),
        ("StatefulSet", "baton-worker"),
        ("CronJob", "baton-sweep"),
        ("ConfigMap", "baton-config"),
        ("Namespace", "baton"),
    }:
        assert fleet[kind, name] == base[kind, name] | {"metadata": fleet[kind, name]["metadata"]}, (
            f"{kind} {name}"
        )


def test_podman_gets_one_pod_per_replica_with_volumes_of_its_own(fleet_docs: list[Doc]) -> None:
    fleet = render.to_podman(fleet_docs)
    pods = {p["metadata"]["name"]: p for p in fleet.pods}
    assert set(pods) == FLEET_PODS
    assert [p["metadata"]["name"] for p in fleet.services] == [
        "baton-postgres-0",
        "baton-redis-0",
        "baton-rabbitmq-0",
    ]
    claims: dict[str, str] = {}
    for name, pod in pods.items():
        spec = pod["spec"]
        assert spec["hostname"] == name and spec["restartPolicy"] == "Always" and spec["hostNetwork"] is True
        for volume in spec["volumes"]:
            if "configMap" in volume:  # podman 4.3: a volume of the ConfigMap's name, shared
                assert set(volume) == {"name", "configMap"} and volume["configMap"]["name"] in fleet.volumes
                continue
            assert set(volume) == {"name", "persistentVolumeClaim"}, f"{name}: {volume}"  # no emptyDir
            claim = volume["persistentVolumeClaim"]["claimName"]
            assert claims.setdefault(claim, name) == name or name.startswith("never"), f"{claim} is shared"
        for container in spec["containers"]:
            assert not set(container) & {"ports", "startupProbe", "livenessProbe", "readinessProbe"}, name
            assert not any("$(" in arg for arg in container.get("args", [])), name
    assert claims["home-baton-worker-1"] == "baton-worker-1"  # Kubernetes' claim name for the pod
    assert claims["baton-api-0-tmp"] == "baton-api-0"
    assert sorted(fleet.volumes) == sorted([*claims, "baton-forge"])  # and the ConfigMap's (shared)
    worker = pods["baton-worker-0"]["spec"]["containers"][0]
    assert worker["args"] == ["worker", "--concurrency", "2"]
    assert {"secretRef": {"name": "baton-model", "optional": True}} in worker["envFrom"]
    assert fleet.ports == [25432, 26379, 35672]
    assert render.api_url(fleet) == "http://127.0.0.1:28765"


def test_what_podman_cannot_run_is_left_out_and_docs_say_so(fleet_docs: list[Doc]) -> None:
    fleet = render.to_podman(fleet_docs)
    kinds = {s.partition("/")[0] for s in fleet.skipped}
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "CronJob",
    }
    section = DOCS.read_text().partition("## A trial fleet")[2].partition("\n## ")[0]
    for kind in kinds | {"StatefulSet", "emptyDir", "Secret", "probe"}:
        assert kind in section, f"docs/deploy.md does not say what becomes of {kind} under podman"
    with pytest.raises(render.RenderError):
        render.to_podman([{"kind": "DaemonSet", "metadata": {"name": "x"}}])


def test_podman_secrets_are_the_flat_base64_maps_podman_4_3_reads(
    tmp_path: Path, fleet_docs: list[Doc]
) -> None:
    fleet = render.to_podman(fleet_docs)
    assert set(fleet.secrets) == {
        "baton-store",
        "baton-webhook",
        "baton-credentials",
        "baton-fleet-services",
        "baton-model",
        "baton-forge",
    }
    store = json.loads(fleet.secrets["baton-store"])
    assert set(store) == {"BATON_STORE_URL", "BATON_BROKER_URL", "BATON_REDIS_URL"}
    render.write_podman(fleet, tmp_path / "out")
    for name in fleet.secrets:
        assert (tmp_path / "out" / "secrets" / f"{name}.json").stat().st_mode & 0o077 == 0
    for pod in fleet.pods:
        played = list(
            yaml.safe_load_all((tmp_path / "out" / "play" / f"{pod['metadata']['name']}.yaml").read_text())
        )
        assert [d["kind"] for d in played] == ["ConfigMap"] * len(fleet.config_maps) + ["Pod"]


def test_generated_secrets_point_at_the_services_ports_with_their_passwords(tmp_path: Path) -> None:
    made = render.make_secrets(tmp_path)
    assert sorted(made) == [
        "credentials.env",
        "fake-github.env",
        "forge.env",
        "model.env",
        "services.env",
        "store.env",
        "webhook.env",
    ]
    assert render.make_secrets(tmp_path) == []  # kept: a second fleet-up keeps the passwords
    passwords = render.read_env_file(tmp_path / "services.env")
    urls = render.read_env_file(tmp_path / "store.env")
    assert all(len(v) == 32 for v in passwords.values())
    assert f":{passwords['POSTGRES_PASSWORD']}@127.0.0.1:25432/" in urls["BATON_STORE_URL"]
    assert urls["BATON_BROKER_URL"].startswith(
        f"amqp://baton:{passwords['RABBITMQ_PASSWORD']}@127.0.0.1:35672/"
    )
    assert f":{passwords['REDIS_PASSWORD']}@127.0.0.1:26379/" in urls["BATON_REDIS_URL"]
    assert (tmp_path / "store.env").stat().st_mode & 0o077 == 0
    load_settings(environ={"BATON_HOME": str(tmp_path), **urls})  # baton accepts them
    fleet = render.to_podman(render.build(FLEET, tmp_path))
    services = {c["name"]: c for p in fleet.services for c in p["spec"]["containers"]}
    ports = {
        name: next(e["value"] for e in c["env"] if e["name"].endswith("PORT") and "DIST" not in e["name"])
        for name, c in services.items()
    }
    assert ports == {"postgres": "25432", "redis": "26379", "rabbitmq": "35672"}


def test_every_service_image_is_built_from_a_containerfile_here(fleet_docs: list[Doc]) -> None:
    fleet = render.to_podman(fleet_docs)
    for pod in fleet.services:
        (container,) = pod["spec"]["containers"]
        name = re.fullmatch(r"localhost/baton-(\w+):dev", container["image"])
        assert name, container["image"]
        containerfile = ROOT / "deploy" / "image" / "services" / f"{name[1]}.Containerfile"
        uid = pod["spec"]["securityContext"]["runAsUser"]
        assert f"USER {uid}:{uid}" in containerfile.read_text(), f"{containerfile.name} runs as another user"
        assert name[1] in (FLEET / "images.sh").read_text()


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ({"op": "replace", "path": "/a/b~1c", "value": 2}, {"a": {"b/c": 2, "l": [1]}}),
        ({"op": "add", "path": "/a/l/-", "value": 3}, {"a": {"b/c": 1, "l": [1, 3]}}),
        ({"op": "add", "path": "/a/l/0", "value": 0}, {"a": {"b/c": 1, "l": [0, 1]}}),
        ({"op": "remove", "path": "/a/b~1c"}, {"a": {"l": [1]}}),
    ],
)
def test_json_6902_operations(op: Doc, expected: Doc) -> None:
    doc = {"a": {"b/c": 1, "l": [1]}}
    render.apply_operation(doc, op)
    assert doc == expected


def test_the_renderer_refuses_what_it_cannot_render_faithfully(tmp_path: Path) -> None:
    with pytest.raises(render.RenderError, match="does not exist"):
        render.apply_operation({"a": {}}, {"op": "replace", "path": "/a/x", "value": 1})
    with pytest.raises(render.RenderError, match="not supported"):
        render.apply_operation({"a": {}}, {"op": "move", "path": "/a/x", "from": "/a/y"})
    (tmp_path / "kustomization.yaml").write_text("resources: []\nreplicas: [{name: x, count: 2}]\n")
    with pytest.raises(render.RenderError, match="replicas"):
        render.build(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "secretGenerator: [{name: x, behavior: replace, envs: [a.env]}]\n"
    )
    (tmp_path / "a.env").write_text("A=1\n")
    with pytest.raises(render.RenderError, match="no base"):
        render.build(tmp_path)
    (tmp_path / "a.env").write_text("not a pair\n")
    with pytest.raises(render.RenderError, match="KEY=VALUE"):
        render.read_env_file(tmp_path / "a.env")


def test_kubernetes_variable_expansion() -> None:
    env = {"N": "4"}
    assert render.expand("--concurrency=$(N)", env) == "--concurrency=4"
    assert render.expand("$$(N) $(UNSET)", env) == "$(N) $(UNSET)"


def test_the_fleet_runs_the_forge_loop_against_its_fake_github(tmp_path: Path) -> None:
    """The fleet's forge.toml reaches the API and both workers, its token_env is in the made forge.env,
    and fake_github.py serves what it names (ports, repository, baton's user with that token)."""
    render.make_secrets(tmp_path / "secrets")
    fleet = render.to_podman(render.build(FLEET, tmp_path / "secrets"))
    pods = {p["metadata"]["name"]: p for p in fleet.baton}
    assert set(pods) == {"baton-api-0", "baton-worker-0", "baton-worker-1"}
    for name, pod in pods.items():
        assert {"name": "forge", "configMap": {"name": "baton-forge"}} in pod["spec"]["volumes"], name
        envs = pod["spec"]["containers"][0]["envFrom"]
        assert {"secretRef": {"name": "baton-forge", "optional": True}} in envs, name
    [forge_map] = [m for m in fleet.config_maps if m["metadata"]["name"] == "baton-forge"]
    assert forge_map["data"] == {"forge.toml": (FLEET / "forge.toml").read_text()}
    config = load_forges(tmp_path, environ={FORGE_CONFIG_ENV: str(FLEET / "forge.toml")})
    forge = config.forges["github"]
    credentials = json.loads(fleet.secrets["baton-forge"])
    token = base64.b64decode(credentials[forge.token_env]).decode()
    assert len(token) == 40
    sys.path.insert(0, str(FLEET))
    try:
        fake = importlib.import_module("fake_github")
    finally:
        sys.path.remove(str(FLEET))
    argv = fake.fake_argv(
        tomllib.loads((FLEET / "forge.toml").read_text()), tmp_path / "secrets", "U", tmp_path
    )
    assert argv[:4] == ["--port", "28780", "--git-port", "28781"]
    (repo,) = config.repos.values()
    assert ["--repo", repo.name] == argv[argv.index("--repo") : argv.index("--repo") + 2]
    assert f"{forge.user}:write:{token}" in argv and "--deliver-to" in argv
    assert (
        forge.api_url == "http://127.0.0.1:28780/api/v3"
        and repo.clone_url == "http://127.0.0.1:28781/acme/demo.git"
    )
    assert "28780" in (FLEET / "fleet.sh").read_text()  # FAKE_PORT: the port fleet.sh waits for


def test_each_pod_is_played_with_its_grace_as_podman_s_stop_timeout(
    fleet_docs: list[Doc], tmp_path: Path
) -> None:
    """podman 4.3's kube play ignores terminationGracePeriodSeconds (10 s, then SIGKILL): each pod gets a
    containers.conf of its own whose stop_timeout is its grace (the worker's 300 s)."""
    fleet = render.to_podman(fleet_docs)
    render.write_podman(fleet, tmp_path / "out")
    base = (FLEET / "containers.conf").read_text()
    for pod in fleet.pods:
        conf = (tmp_path / "out" / "play" / f"{pod['metadata']['name']}.conf").read_text()
        grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        assert conf == base.rstrip("\n") + f"\nstop_timeout = {grace}\n"
        assert tomllib.loads(conf)["engine"]["stop_timeout"] == grace
    assert render.grace(next(p for p in fleet.pods if p["metadata"]["name"] == "baton-worker-0")) == 300
    with pytest.raises(render.RenderError, match="last table"):
        render.play_conf("[engine]\nruntime = 'runc'\n[containers]\n", 5)
    with pytest.raises(render.RenderError, match="stop_timeout"):
        render.play_conf("[engine]\nstop_timeout = 10\n", 5)
