"""Render a kustomization into what ``podman kube play`` (podman 4.3) can run: the trial fleet's
manifests (deploy/fleet, an overlay of deploy/kubernetes) become pods on one host, from the SAME
manifests a cluster applies, with no second description of the fleet.

Two halves, each small:

- :func:`build` is the part of kustomize these manifests use, so no kustomize binary is needed:
  ``resources`` (files and directories of other kustomizations, recursively), ``namespace``,
  ``labels`` (on objects' metadata), ``images``, ``secretGenerator`` and ``configMapGenerator`` from
  ``envs`` and ``files`` (``behavior: create | replace | merge``), and ``patches`` written as JSON 6902
  operations (add, replace, remove) with a ``target`` kind and name. Anything else in a
  kustomization is refused by name, never ignored. Generated names get no content hash (podman's
  objects are referenced by their plain names).
- :func:`to_podman` turns the built objects into what podman 4.3 runs. Its ``kube play`` knows Pods,
  Deployments, PersistentVolumeClaims and ConfigMaps; a Secret kind in the YAML is stored where the
  pods cannot read it ("secret ... is not valid JSON"), an ``emptyDir`` becomes ONE named volume
  per volume name shared by every pod, and a claim that already exists stops the play. So:
  every workload becomes Pods (a Deployment or StatefulSet of N replicas: ``NAME-0`` … ``NAME-N-1``,
  with ``hostname`` set to the pod's name as Kubernetes does), a StatefulSet's volumeClaimTemplates
  and every emptyDir become a named volume per pod (``CLAIM-POD``, Kubernetes' own claim name, and
  ``POD-VOLUME``), ``$(VAR)`` in command and args is expanded as the kubelet expands it, and each
  Secret becomes a podman secret (a JSON map of base64 values: what 4.3's ``secretKeyRef`` and
  ``secretRef`` read). What podman cannot express — Namespace, ServiceAccount, Service,
  PodDisruptionBudget, NetworkPolicy, CronJob — is left out and listed in :attr:`Podman.skipped`.
  Probes are left out too: podman runs them as commands inside the container (``curl``, which the
  images lack) on systemd timers this kind of host does not have. ``terminationGracePeriodSeconds``
  is ignored by 4.3's ``kube play`` (every container stops after 10 s): each pod is played with a
  containers.conf of its own whose ``stop_timeout`` is that grace (:func:`play_conf`), which podman
  stores on the containers, so ``podman pod stop`` and ``pod rm --force`` give it.

Each pod comes in a file of its own with its containers.conf; the backing services (pods not named
``baton``) are listed apart, so PostgreSQL and the broker answer before baton's pods start
(``fleet.sh`` waits for their ports between).

    render.py podman DIR --secrets SECRETS --out OUT     (OUT: play/POD.yaml, play/POD.conf, secrets/, …)
    render.py secrets SECRETS [--broker amqp|redis]      (make missing env files, random passwords)
    render.py build DIR --secrets SECRETS                 (print the built manifests)
"""

from __future__ import annotations

import argparse
import base64
import copy
import json
import re
import secrets as random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

KNOWN_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "secretGenerator",
    "configMapGenerator",
    "patches",
}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}
# Kinds with no meaning for pods on one host (podman has no cluster network, scheduler or API server).
SKIPPED = {"Namespace", "ServiceAccount", "Service", "PodDisruptionBudget", "NetworkPolicy", "CronJob"}
WORKLOADS = {"Deployment", "StatefulSet"}
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")  # podman's settings for the pods
DEFAULT_GRACE = 30  # Kubernetes' terminationGracePeriodSeconds when a pod names none


class RenderError(Exception):
    """A kustomization or manifest this renderer cannot render faithfully (the message says what)."""


# -- the kustomize subset -----------------------------------------------------------------------------


def build(directory: Path, secrets_dir: Path | None = None) -> list[Doc]:
    """The objects of the kustomization in ``directory``, as ``kustomize build`` makes them (no name
    hashes). ``secrets_dir`` stands in for every kustomization's ``secrets/`` directory (the env
    files the generators read, the base's included), so a trial fleet or a test brings its own
    without touching the checkout's."""
    return _build(directory, secrets_dir)


def _build(directory: Path, secrets_dir: Path | None) -> list[Doc]:
    spec = _load_kustomization(directory)
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        docs += _build(path, secrets_dir) if path.is_dir() else _load_docs(path)
    for kind, key in (("Secret", "secretGenerator"), ("ConfigMap", "configMapGenerator")):
        for generator in spec.get(key, []):
            _generate(docs, kind, generator, directory, secrets_dir)
    _transform(docs, spec)
    for patch in spec.get("patches", []):
        _patch(docs, patch)
    return docs


def _transform(docs: list[Doc], spec: Doc) -> None:
    """A kustomization's namespace, labels and images, applied to its objects."""
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    for label in spec.get("labels", []):
        if label.get("includeSelectors") or label.get("includeTemplates"):
            raise RenderError("labels: only metadata labels (includeSelectors/includeTemplates false)")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label["pairs"])
    for image in spec.get("images", []):
        _set_image(docs, image)


def _load_kustomization(directory: Path) -> Doc:
    spec: Doc = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(spec) - KNOWN_FIELDS
    if unknown:
        raise RenderError(f"{directory}/kustomization.yaml: not supported here: {sorted(unknown)}")
    return spec


def _load_docs(path: Path) -> list[Doc]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines, as kustomize reads an ``envs`` file (comments and blank lines skipped)."""
    pairs = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", key.strip()):
            raise RenderError(f"{path}:{number}: not KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def _generate(docs: list[Doc], kind: str, generator: Doc, directory: Path, secrets_dir: Path | None) -> None:
    unknown = set(generator) - {"name", "envs", "files", "behavior"}
    if unknown:
        raise RenderError(f"{generator.get('name')}: generator fields not supported here: {sorted(unknown)}")
    data: dict[str, str] = {}
    for env in generator.get("envs", []):
        data |= read_env_file(_source(env, directory, secrets_dir))
    for entry in generator.get("files", []):  # ``path`` (its key: the file's name) or ``key=path``
        key, _, name = entry.rpartition("=")
        path = _source(name, directory, secrets_dir)
        data[key or path.name] = path.read_text()
    name, behavior = generator["name"], generator.get("behavior", "create")
    existing = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    if behavior == "create" and existing:
        raise RenderError(f"{kind} {name} is generated twice (use behavior: replace or merge)")
    if behavior in ("replace", "merge") and not existing:
        raise RenderError(f"{kind} {name}: behavior {behavior} but no base generates it")
    if behavior == "merge":
        data = _plain_data(existing[0]) | data
    for old in existing:
        docs.remove(old)
    made: Doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    if kind == "Secret":
        made["type"] = "Opaque"
        made["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        made["data"] = data
    docs.append(made)


def _source(name: str, directory: Path, secrets_dir: Path | None) -> Path:
    """A generator's file: ``secrets/…`` from ``secrets_dir`` when one is given."""
    if secrets_dir is not None and Path(name).parts[:1] == ("secrets",):
        return secrets_dir.joinpath(*Path(name).parts[1:])
    return directory / name


def _plain_data(doc: Doc) -> dict[str, str]:
    data: dict[str, str] = doc.get("data") or {}
    if doc["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in data.items()}
    return dict(data)


def _set_image(docs: list[Doc], image: Doc) -> None:
    for container in (c for doc in docs for c in _containers(doc)):
        repository, _, _ = container["image"].partition(":")
        if repository == image["name"]:
            container["image"] = f"{image.get('newName', repository)}:{image['newTag']}"


def _patch(docs: list[Doc], patch: Doc) -> None:
    target = patch.get("target") or {}
    if set(target) - {"kind", "name"} or "patch" not in patch:
        raise RenderError(f"patches: only inline JSON 6902 patches with a target kind and name: {patch}")
    matched = [
        d for d in docs if d["kind"] == target.get("kind") and d["metadata"]["name"] == target.get("name")
    ]
    if not matched:
        raise RenderError(f"patches: no {target.get('kind')} {target.get('name')} to patch")
    for doc in matched:
        for op in yaml.safe_load(patch["patch"]):
            apply_operation(doc, op)


def apply_operation(doc: Doc, op: Doc) -> None:
    """One JSON 6902 operation (RFC 6902: ``add``, ``replace``, ``remove``; ``~1`` is ``/``, ``~0`` is
    ``~``; ``-`` appends to a list). A path that does not exist fails, as in kustomize."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    kind = op["op"]
    if kind not in ("add", "replace", "remove"):
        raise RenderError(f"patch operation {kind!r} is not supported here")
    if isinstance(node, list):
        index = len(node) if last == "-" else int(last)
        if kind == "add":
            node.insert(index, copy.deepcopy(op["value"]))
        elif kind == "replace":
            node[index] = copy.deepcopy(op["value"])
        else:
            del node[index]
    elif kind == "add":
        node[last] = copy.deepcopy(op["value"])
    elif last not in node:
        raise RenderError(f"patch: {op['path']} does not exist")
    elif kind == "replace":
        node[last] = copy.deepcopy(op["value"])
    else:
        del node[last]


def pod_template(doc: Doc) -> Doc | None:
    """The pod template of a workload (Deployment, StatefulSet, Job, CronJob); None for the rest."""
    spec = doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template = spec.get("template")
    return template if isinstance(template, dict) and doc["kind"] != "PodDisruptionBudget" else None


def _containers(doc: Doc) -> list[Doc]:
    template = pod_template(doc)
    if template is None:
        return []
    spec = template["spec"]
    found: list[Doc] = spec.get("initContainers", []) + spec["containers"]
    return found


# -- what podman runs -----------------------------------------------------------------------------------


@dataclass
class Podman:
    """What ``podman kube play`` is given: pods (services first), ConfigMaps, podman secrets (name →
    the JSON map podman stores), the named volumes the pods use, and what was left out."""

    services: list[Doc] = field(default_factory=list)
    baton: list[Doc] = field(default_factory=list)
    config_maps: list[Doc] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # the services' ports, to wait for
    skipped: list[str] = field(default_factory=list)

    @property
    def pods(self) -> list[Doc]:
        return self.services + self.baton


def to_podman(docs: list[Doc]) -> Podman:
    """The objects of :func:`build` as podman 4.3 runs them (the module's docstring says how)."""
    out = Podman()
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "ConfigMap":
            data = dict(doc.get("data") or {})
            out.config_maps.append(
                {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}, "data": data}
            )
        elif kind == "Secret":
            out.secrets[name] = json.dumps(doc.get("data") or {}, sort_keys=True)
        elif kind == "PersistentVolumeClaim":
            out.volumes.append(name)
        elif kind in SKIPPED:
            out.skipped.append(f"{kind}/{name}")
        elif kind not in WORKLOADS:
            raise RenderError(f"{kind} {name}: podman cannot run it and this renderer does not know it")
    maps = {m["metadata"]["name"]: m["data"] for m in out.config_maps}
    for doc in (d for d in docs if d["kind"] in WORKLOADS):
        for pod in workload_pods(doc, maps):
            out.volumes += [v for v in pod_volumes(pod) if v not in out.volumes]
            is_baton = pod["metadata"]["labels"].get("app.kubernetes.io/name") == "baton"
            (out.baton if is_baton else out.services).append(pod)
        if doc["metadata"]["labels"].get("app.kubernetes.io/name") != "baton":
            out.ports += [p["containerPort"] for c in _containers(doc) for p in c.get("ports", [])]
    return out


def workload_pods(doc: Doc, config_maps: dict[str, dict[str, str]]) -> list[Doc]:
    """A Deployment's or StatefulSet's replicas as Pods ``NAME-0`` … (restart always, as a
    controller's pods are): claims from volumeClaimTemplates named ``CLAIM-POD`` as Kubernetes names
    them, each emptyDir a volume of its own pod, ``$(VAR)`` expanded, probes left out, and on the
    host's network no container ports (podman refuses port mappings there; they are only names)."""
    name, template = doc["metadata"]["name"], pod_template(doc)
    assert template is not None
    claims = [c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])]
    pods = []
    for index in range(int(doc["spec"].get("replicas", 1))):
        pod_name = f"{name}-{index}"
        spec = copy.deepcopy(template["spec"])
        spec["hostname"] = pod_name
        spec["restartPolicy"] = "Always"
        volumes = [v for v in spec.get("volumes", []) if v["name"] not in claims]
        for volume in volumes:
            if "emptyDir" in volume:
                del volume["emptyDir"]
                volume["persistentVolumeClaim"] = {"claimName": f"{pod_name}-{volume['name']}"}
        volumes += [{"name": c, "persistentVolumeClaim": {"claimName": f"{c}-{pod_name}"}} for c in claims]
        spec["volumes"] = volumes
        for container in spec.get("initContainers", []) + spec["containers"]:
            for probe in PROBES:
                container.pop(probe, None)
            if spec.get("hostNetwork"):  # podman: "PortMappings can only be used with Bridge ..."
                container.pop("ports", None)
            env = container_env(container, config_maps)
            for field_name in ("command", "args"):
                if field_name in container:
                    container[field_name] = [expand(arg, env) for arg in container[field_name]]
        labels = dict(template["metadata"].get("labels") or {})
        metadata = {"name": pod_name, "labels": labels}
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    return pods


def pod_volumes(pod: Doc) -> list[str]:
    """The named volumes a pod mounts: its claims, and its ConfigMaps (podman 4.3 keeps each in a
    volume of the ConfigMap's name, shared by the pods, its files written again at each play)."""
    volumes = pod["spec"]["volumes"]
    return [v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v] + [
        v["configMap"]["name"] for v in volumes if "configMap" in v
    ]


def container_env(container: Doc, config_maps: dict[str, dict[str, str]]) -> dict[str, str]:
    """The plain values a container's ``$(VAR)`` can name: its ConfigMaps' (envFrom), then ``env``'s."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= config_maps.get(source["configMapRef"]["name"], {})
    env |= {var["name"]: var["value"] for var in container.get("env", []) if "value" in var}
    return env


def expand(arg: str, env: dict[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: a defined variable's value; ``$$`` is a literal ``$``; an
    undefined reference stays as written."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        arg,
    )


# -- secrets for a trial fleet -------------------------------------------------------------------------

PORTS = {"postgres": 25432, "redis": 26379, "rabbitmq": 35672}


def make_secrets(directory: Path, broker: str = "amqp") -> list[str]:
    """Write the env files the trial fleet's generators read that are missing in ``directory``:
    random passwords for the services, the URLs baton uses built from them, a random webhook secret,
    random tokens on the fake GitHub, and empty credentials. Existing files are kept. The names written."""
    directory.mkdir(parents=True, exist_ok=True)
    services = directory / "services.env"
    written = [] if services.exists() else ["services.env"]
    if written:
        _write(
            services,
            {f"{s.upper()}_PASSWORD": random.token_hex(16) for s in ("postgres", "redis", "rabbitmq")},
        )
    pw = read_env_file(services)
    urls = {
        "BATON_STORE_URL": f"postgresql+psycopg://baton:{pw['POSTGRES_PASSWORD']}@127.0.0.1:{PORTS['postgres']}/baton",
        "BATON_REDIS_URL": f"redis://:{pw['REDIS_PASSWORD']}@127.0.0.1:{PORTS['redis']}/0",
    }
    urls["BATON_BROKER_URL"] = (
        f"amqp://baton:{pw['RABBITMQ_PASSWORD']}@127.0.0.1:{PORTS['rabbitmq']}//"
        if broker == "amqp"
        else f"redis://:{pw['REDIS_PASSWORD']}@127.0.0.1:{PORTS['redis']}/1"
    )
    wanted = {
        "store.env": urls,
        "webhook.env": {"BATON_WEBHOOK_SECRET": random.token_hex(32)},
        "credentials.env": {},
        "model.env": {},
        # baton's token on the fake GitHub fleet.sh runs, and its person's (fake_github.py)
        "forge.env": {"BATON_GIT_TOKEN": random.token_hex(20)},
        "fake-github.env": {"FAKE_GITHUB_TOKEN": random.token_hex(20)},
    }
    for name, values in wanted.items():
        if not (directory / name).exists():
            _write(directory / name, values)
            written.append(name)
    return written


def _write(path: Path, values: dict[str, str]) -> None:
    path.touch(mode=0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


# -- the command line ---------------------------------------------------------------------------------


def write_podman(fleet: Podman, out: Path, conf: str | None = None) -> None:
    """OUT/play/POD.yaml (the ConfigMaps, which kube play reads from the same file, and the pod) and
    OUT/play/POD.conf (``conf``, deploy/fleet/containers.conf by default, with the pod's grace:
    :func:`play_conf`), OUT/secrets/NAME.json (0600), OUT/volumes, OUT/pods (and OUT/service-pods,
    OUT/baton-pods), OUT/ports (the services' ``127.0.0.1:PORT`` to wait for), OUT/api (the API's
    URL): one name a line, for fleet.sh."""
    base = CONTAINERS_CONF.read_text() if conf is None else conf
    (out / "secrets").mkdir(parents=True, exist_ok=True)
    (out / "play").mkdir(exist_ok=True)
    for pod in fleet.pods:
        name = pod["metadata"]["name"]
        (out / "play" / f"{name}.yaml").write_text(
            yaml.safe_dump_all([*fleet.config_maps, pod], sort_keys=False)
        )
        (out / "play" / f"{name}.conf").write_text(play_conf(base, grace(pod)))
    for name, data in fleet.secrets.items():
        path = out / "secrets" / f"{name}.json"
        path.touch(mode=0o600)
        path.write_text(data)
    (out / "volumes").write_text("".join(f"{v}\n" for v in fleet.volumes))
    (out / "pods").write_text("".join(f"{p['metadata']['name']}\n" for p in fleet.pods))
    for name, pods in (("service-pods", fleet.services), ("baton-pods", fleet.baton)):
        (out / name).write_text("".join(f"{p['metadata']['name']}\n" for p in pods))
    (out / "ports").write_text("".join(f"127.0.0.1:{p}\n" for p in fleet.ports))
    (out / "api").write_text(api_url(fleet) + "\n")


def grace(pod: Doc) -> int:
    """The pod's ``terminationGracePeriodSeconds`` (Kubernetes' default: 30)."""
    return int(pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE))


def play_conf(base: str, seconds: int) -> str:
    """containers.conf for one pod's ``kube play``: ``base`` with ``[engine] stop_timeout`` its grace.
    podman 4.3 ignores ``terminationGracePeriodSeconds`` (and any annotation for it), but stores this
    default on each container it creates: ``podman pod stop``, ``pod rm --force`` and ``kube play
    --replace`` then wait that long after SIGTERM (measured: docs/deploy.md)."""
    tables = re.findall(r"^\[([^\]]+)\]", base, re.MULTILINE)
    if tables[-1:] != ["engine"] or re.search(r"^\s*stop_timeout\b", base, re.MULTILINE):
        raise RenderError("containers.conf: [engine] must be its last table, without a stop_timeout")
    return base.rstrip("\n") + f"\nstop_timeout = {seconds}\n"


def api_url(fleet: Podman) -> str:
    """Where the API pod listens (its ``--host`` and ``--port``)."""
    for pod in fleet.baton:
        args = pod["spec"]["containers"][0].get("args", [])
        if args[:1] == ["serve"]:
            return f"http://{args[args.index('--host') + 1]}:{args[args.index('--port') + 1]}"
    raise RenderError("no pod runs `baton serve`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    podman = commands.add_parser("podman", help="render DIR for podman kube play into OUT")
    podman.add_argument("directory", type=Path)
    podman.add_argument("--secrets", type=Path)
    podman.add_argument("--out", type=Path, required=True)
    built = commands.add_parser("build", help="print the built manifests of DIR")
    built.add_argument("directory", type=Path)
    built.add_argument("--secrets", type=Path)
    made = commands.add_parser("secrets", help="write the trial fleet's missing env files")
    made.add_argument("directory", type=Path)
    made.add_argument("--broker", choices=("amqp", "redis"), default="amqp")
    made.add_argument("--quiet", action="store_true", help="say nothing of the files written")
    args = parser.parse_args(argv)
    try:
        if args.command == "secrets":
            for name in make_secrets(args.directory, args.broker):
                if not args.quiet:
                    print(f"render: wrote {args.directory / name}", file=sys.stderr)
        elif args.command == "build":
            print(yaml.safe_dump_all(build(args.directory, args.secrets), sort_keys=False), end="")
        else:
            fleet = to_podman(build(args.directory, args.secrets))
            write_podman(fleet, args.out)
            print(
                f"render: {len(fleet.pods)} pods, {len(fleet.volumes)} volumes, "
                f"{len(fleet.secrets)} secrets; "
                f"left out (podman cannot express them): {', '.join(fleet.skipped)}",
                file=sys.stderr,
            )
    except (RenderError, OSError, KeyError, yaml.YAMLError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
