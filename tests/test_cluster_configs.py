"""cluster/: launcher configs against Ray's own schema, the RayJob, the image, the MLflow recipe.

Nothing here starts a cloud node or a container: the Ray cluster-launcher configs are checked
with the validation `ray up` itself runs (`ray/autoscaler/ray-schema.json` through jsonschema,
then `ray.autoscaler._private.util.validate_config`, raw and after `prepare_config` merged
the provider defaults), and every Ray version or image tag in cluster/ must equal the
installed `ray.__version__`, so a Ray upgrade cannot leave the cluster files behind.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import mlflow
import pytest
import ray
import ray.autoscaler
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "cluster"
LAUNCHER_CONFIGS = {"aws-gpu.yaml": "aws", "gcp-gpu.yaml": "gcp"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def ray_schema() -> dict:
    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    return json.loads(path.read_text())


def check_launcher_config(config: dict) -> None:
    """What `ray up` checks before it creates anything; raises on an invalid config."""
    jsonschema.validate(config, ray_schema())
    validate_config(config)
    validate_config(prepare_config(copy.deepcopy(config)))


@cache
def dockerfile_args_and_base() -> tuple[dict[str, str], str]:
    """ARG defaults declared before FROM, and the FROM image with them substituted."""
    args: dict[str, str] = {}
    for line in (CLUSTER / "Dockerfile").read_text().splitlines():
        line = line.strip()
        if match := re.fullmatch(r"ARG\s+(\w+)=(\S+)", line):
            args.setdefault(match[1], match[2])
        elif match := re.fullmatch(r"FROM\s+(\S+)(?:\s+AS\s+\S+)?", line, flags=re.IGNORECASE):
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], match[1])
            return args, image
    raise AssertionError("cluster/Dockerfile has no FROM line")


def base_image_parts() -> tuple[str, str, str]:
    """(ray version, python tag, platform) of the Dockerfile's rayproject/ray base image."""
    _, image = dockerfile_args_and_base()
    match = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-(py3\d+)-(gpu|cu\d+)", image)
    assert match, f"FROM {image}: expected rayproject/ray:<version>-py3XX-<gpu|cuXX>"
    return match[1], match[2], match[3]


def expected_image_tag() -> str:
    """Our image's tag, `ray<version>-<python>-<platform>`, derived from the FROM line."""
    version, python, platform = base_image_parts()
    return f"ray{version}-{python}-{platform}"


def assert_our_image(image: str, where: str) -> None:
    name, _, tag = image.rpartition(":")
    assert name.endswith("/privsweep"), f"{where}: image {image} is not the privsweep image"
    assert tag == expected_image_tag(), (
        f"{where}: image tag {tag} != {expected_image_tag()} (cluster/Dockerfile's base and "
        f"ray {ray.__version__})"
    )


# --- Ray cluster launcher configs ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LAUNCHER_CONFIGS))
def test_launcher_config_is_valid_for_ray(name):
    config = load_yaml(CLUSTER / name)
    assert config["provider"]["type"] == LAUNCHER_CONFIGS[name]
    check_launcher_config(config)


BREAKAGES = {
    "unknown top-level key": lambda c: c.update(max_worker=4),
    "max_workers of the wrong type": lambda c: c.update(max_workers="four"),
    "unknown docker key": lambda c: c["docker"].update(imag=c["docker"]["image"]),
    "node type without resources": lambda c: c["available_node_types"][c["head_node_type"]].pop(
        "resources"
    ),
    "head_node_type not a node type": lambda c: c.update(head_node_type="no-such-type"),
    "min_workers above max_workers": lambda c: c.update(max_workers=0),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
@pytest.mark.parametrize("name", sorted(LAUNCHER_CONFIGS))
def test_broken_launcher_config_is_rejected(name, breakage):
    config = load_yaml(CLUSTER / name)
    BREAKAGES[breakage](config)
    with pytest.raises((jsonschema.ValidationError, ValueError)):
        check_launcher_config(config)


@pytest.mark.parametrize("name", sorted(LAUNCHER_CONFIGS))
def test_launcher_config_has_cpu_head_and_gpu_workers(name):
    config = load_yaml(CLUSTER / name)
    node_types = config["available_node_types"]
    head = node_types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0, "the head runs the driver, not GPU trials"
    workers = {key: node for key, node in node_types.items() if key != config["head_node_type"]}
    gpu_workers = {
        key: node for key, node in workers.items() if node["resources"].get("GPU", 0) >= 1
    }
    assert gpu_workers, f"{name}: no worker node type declares GPU resources"
    for key, node in gpu_workers.items():
        assert 0 <= node["min_workers"] <= node["max_workers"] <= config["max_workers"], key
        node_config = node["node_config"]
        if LAUNCHER_CONFIGS[name] == "aws":
            assert re.match(r"(g|p)\d", node_config["InstanceType"]), node_config["InstanceType"]
        else:
            accelerators = node_config["guestAccelerators"]
            assert accelerators and all(a["acceleratorCount"] >= 1 for a in accelerators)
            # Compute Engine takes an object; GPU VMs cannot live-migrate.
            assert node_config["scheduling"]["onHostMaintenance"] == "TERMINATE"


@pytest.mark.parametrize("name", sorted(LAUNCHER_CONFIGS))
def test_launcher_config_runs_our_image_and_documents_its_use(name):
    config = load_yaml(CLUSTER / name)
    assert_our_image(config["docker"]["image"], f"cluster/{name} docker.image")
    run_options = " ".join(config["docker"]["run_options"])
    assert "PRIVSWEEP_DATA=" in run_options
    text = (CLUSTER / name).read_text()
    assert f"ray up cluster/{name}" in text
    assert "ray job submit" in text and "--working-dir ." in text
    assert "python -m sweeps run sweeps/noisy_arl.yaml --set tracking.uri=http://" in text


# --- KubeRay RayJob -----------------------------------------------------------------------


def rayjob_documents() -> list[dict]:
    return [doc for doc in yaml.safe_load_all((CLUSTER / "rayjob.yaml").read_text()) if doc]


def rayjob() -> dict:
    jobs = [doc for doc in rayjob_documents() if doc.get("kind") == "RayJob"]
    assert len(jobs) == 1, "cluster/rayjob.yaml must hold exactly one RayJob"
    return jobs[0]


def pod_specs(job: dict) -> dict[str, dict]:
    cluster = job["spec"]["rayClusterSpec"]
    specs = {"head": cluster["headGroupSpec"]["template"]["spec"]}
    for group in cluster["workerGroupSpecs"]:
        specs[group["groupName"]] = group["template"]["spec"]
    return specs


def test_rayjob_runs_a_shipped_sweep_spec():
    job = rayjob()
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:4] == ["python", "-m", "sweeps", "run"], spec["entrypoint"]
    spec_path = argv[4]
    assert spec_path.startswith("sweeps/") and spec_path.endswith(".yaml")
    assert (ROOT / spec_path).is_file(), f"the RayJob runs {spec_path}, which is not in the repo"
    sets = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--set"]
    assert "tracking.uri=http://mlflow:5000" in sets
    assert "uri" in load_yaml(ROOT / spec_path)["tracking"]
    # The relative spec path resolves against the repo copy inside the image.
    runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
    assert runtime_env["working_dir"] == "/home/ray/privsweep"
    assert "WORKDIR /home/ray/privsweep" in (CLUSTER / "Dockerfile").read_text()
    assert spec["shutdownAfterJobFinishes"] is True


def test_rayjob_cluster_has_head_and_gpu_workers_on_our_image():
    cluster = rayjob()["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    gpu_groups = [
        group
        for group in cluster["workerGroupSpecs"]
        if any(
            int(container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0)) >= 1
            for container in group["template"]["spec"]["containers"]
        )
    ]
    assert gpu_groups, "no worker group limits nvidia.com/gpu"
    for group in gpu_groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for role, pod in pod_specs(rayjob()).items():
        for container in pod["containers"]:
            assert_our_image(container["image"], f"cluster/rayjob.yaml {role} container")


def test_rayjob_pods_read_data_from_the_pvc():
    claims = {
        doc["metadata"]["name"]
        for doc in rayjob_documents()
        if doc.get("kind") == "PersistentVolumeClaim"
    }
    for role, pod in pod_specs(rayjob()).items():
        pvc_volumes = {
            volume["name"]
            for volume in pod["volumes"]
            if volume.get("persistentVolumeClaim", {}).get("claimName") in claims
        }
        assert pvc_volumes, f"{role}: no volume backed by the PVC in cluster/rayjob.yaml"
        for container in pod["containers"]:
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            data = env.get("PRIVSWEEP_DATA")
            assert data, f"{role}: PRIVSWEEP_DATA unset"
            assert mounts.get(data) in pvc_volumes, (
                f"{role}: PRIVSWEEP_DATA={data} is not the PVC mount"
            )


# --- container image ----------------------------------------------------------------------


def test_dockerfile_base_is_the_installed_ray():
    version, python, platform = base_image_parts()
    assert version == ray.__version__, (
        f"cluster/Dockerfile FROM rayproject/ray:{version}-... but ray {ray.__version__} is "
        "installed: bump RAY_VERSION, the image tags and rayVersion together"
    )
    assert platform == "gpu" or platform.startswith("cu")
    assert python == "py311"


def test_dockerfile_installs_the_repo_with_pinned_torch():
    text = (CLUSTER / "Dockerfile").read_text()
    args, _ = dockerfile_args_and_base()
    assert re.search(r"^COPY\b.*\s\.\s+\.\s*$", text, flags=re.MULTILINE), "the repo is not copied"
    assert re.search(r"pip install\b[^\n]*\s\.(\s|$)", text), "no `pip install .`"
    torch_line = re.search(r"^ARG TORCH_VERSION=(\S+)$", text, flags=re.MULTILINE)
    assert torch_line, "cluster/Dockerfile pins no TORCH_VERSION"
    pyproject = (ROOT / "pyproject.toml").read_text()
    torch_requirement = Requirement(re.search(r'"(torch[><=!~][^"]*)"', pyproject)[1])
    assert Version(torch_line[1]) in torch_requirement.specifier
    assert "RAY_VERSION" in args
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    for path in (".venv", "mlflow.db", "mlartifacts"):
        assert path in ignored, f"{path} is not kept out of the image"


# --- MLflow tracking server ---------------------------------------------------------------


def compose() -> dict:
    return load_yaml(CLUSTER / "mlflow" / "docker-compose.yaml")


def mlflow_command() -> list[str]:
    command = compose()["services"]["mlflow"]["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(argv: list[str], name: str) -> str:
    assert name in argv, f"mlflow server has no {name}"
    return argv[argv.index(name) + 1]


def compose_default(value: str) -> str:
    """`${VAR:-default}` -> default (what compose substitutes when VAR is unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_compose_runs_mlflow_on_postgres_with_proxied_artifacts():
    services = compose()["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres")
    argv = mlflow_command()
    assert argv[:2] == ["mlflow", "server"]
    backend = compose_default(option(argv, "--backend-store-uri"))
    assert backend.startswith("postgresql://")
    assert "@postgres:5432/" + postgres["environment"]["POSTGRES_DB"] in backend
    assert "postgres" in services["mlflow"]["depends_on"]
    destination = option(argv, "--artifacts-destination")
    assert destination.startswith("s3://")
    bucket = destination.removeprefix("s3://").split("/")[0]
    init = " ".join(services["minio-init"]["entrypoint"])
    assert f"mc mb --ignore-existing store/{bucket}" in init, "the artifact bucket is never created"
    assert services["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "--serve-artifacts" in argv
    assert option(argv, "--host") == "0.0.0.0"


def test_every_cluster_path_keeps_the_study_in_the_postgres_beside_mlflow():
    """The driver's Optuna study in the compose recipe's Postgres (database `optuna`, apart from
    MLflow's: both have an alembic_version table), not in optuna.db on the head's disk."""
    postgres = compose()["services"]["postgres"]
    init = CLUSTER / "mlflow" / "initdb" / "optuna.sql"
    assert "./initdb:/docker-entrypoint-initdb.d:ro" in postgres["volumes"] and "CREATE DATABASE optuna;" in init.read_text()
    [published] = postgres["ports"]
    assert compose_default(published) == "127.0.0.1:5432:5432"  # loopback unless POSTGRES_HOST_IP names a private address
    head = pod_specs(rayjob())["head"]["containers"][0]
    [study] = [e for e in head["env"] if e["name"] == "PRIVSWEEP_STUDY_STORAGE"]
    assert study["valueFrom"]["secretKeyRef"]["name"] == "privsweep-mlflow"  # a password: from a Secret, never a value
    for name in ("aws-gpu.yaml", "gcp-gpu.yaml", "README.md", "mlflow/README.md"):
        text = (CLUSTER / name).read_text()
        assert '\\"PRIVSWEEP_STUDY_STORAGE\\": \\"$PRIVSWEEP_STUDY_STORAGE\\"' in text, name  # passed to the driver
        assert "@<" in text and ":5432/optuna" in text, name


def test_every_cluster_path_keeps_the_launch_state_where_every_node_reaches_it():
    """Tune's experiment state, launch.json and the trials' epoch state (`PRIVSWEEP_STORAGE`,
    trainables/storage.py) on storage every node shares, not on the head's disk: the RayJob on
    its ReadWriteMany volume, the launcher configs (whose /data is each node's own) in a bucket
    passed to the driver."""
    job = rayjob()
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])["env_vars"]
    pods = pod_specs(job)
    mounts = {(name, m["mountPath"]) for name, spec in pods.items() for m in spec["containers"][0]["volumeMounts"]}
    volume = "/" + env["PRIVSWEEP_STORAGE"].strip("/").split("/")[0]
    assert {(name, volume) for name in pods} <= mounts  # every pod mounts the volume the storage is on
    claims = {v["persistentVolumeClaim"]["claimName"] for spec in pods.values() for v in spec["volumes"] if "persistentVolumeClaim" in v}
    [claim] = [doc for doc in rayjob_documents() if doc.get("kind") == "PersistentVolumeClaim"]
    assert claim["metadata"]["name"] in claims and claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, scheme in (("aws-gpu.yaml", "s3"), ("gcp-gpu.yaml", "gs"), ("README.md", "s3"), ("mlflow/README.md", "s3")):
        text = (CLUSTER / name).read_text()
        assert '\\"PRIVSWEEP_STORAGE\\": \\"$PRIVSWEEP_STORAGE\\"' in text, name  # passed to the driver
        assert f"{scheme}://<bucket>/privsweep" in text, name


def test_compose_mlflow_accepts_the_rayjob_tracking_host():
    # MLflow 3 rejects Host headers outside --allowed-hosts; the RayJob logs to http://mlflow:5000.
    allowed = compose_default(option(mlflow_command(), "--allowed-hosts")).split(",")
    for host in ("mlflow:5000", "10.0.0.5:5000", "localhost:5000"):
        assert any(fnmatch.fnmatch(host, pattern) for pattern in allowed), host


def test_mlflow_server_image_matches_the_client():
    text = (CLUSTER / "mlflow" / "Dockerfile").read_text()
    pinned = re.search(r"^ARG MLFLOW_VERSION=(\S+)$", text, flags=re.MULTILINE)
    assert pinned and "psycopg2" in text and "boto3" in text
    assert Version(pinned[1]).major == Version(mlflow.__version__).major
    assert compose()["services"]["mlflow"]["image"].endswith(f":{pinned[1]}")
    assert (CLUSTER / "mlflow" / "README.md").is_file() and (CLUSTER / "README.md").is_file()


# --- secure by default --------------------------------------------------------------------
# Each check returns what exposes the cluster; the shipped files give none, and each insecure
# variant below (a scratch copy of a shipped file with one thing undone) gives one.

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY|ROOT_USER", re.IGNORECASE)
LOOPBACK = ("127.0.0.1", "localhost")
SECRET_FILES = (".env", "cluster/mlflow/.env", "cluster/.env", "sweeps/prod.env")


def launcher_exposure(config: dict) -> list[str]:
    """A head whose dashboard (the job API: code execution) listens beyond loopback, a node
    without token authentication, a token file that never reaches the nodes."""
    problems = []
    run_options = " ".join(config["docker"]["run_options"])
    if "RAY_AUTH_MODE=token" not in run_options:
        problems.append("docker.run_options: RAY_AUTH_MODE=token is not set on the nodes")
    token_path = re.search(r"RAY_AUTH_TOKEN_PATH=(\S+)", run_options)
    if not token_path or token_path[1] not in (config.get("file_mounts") or {}):
        problems.append("file_mounts: the auth token file never reaches the nodes")
    for command in config["head_start_ray_commands"]:
        host = re.search(r"--dashboard-host[= ](\S+)", command)
        if "--head" in command and host and host[1] not in LOOPBACK:
            problems.append(f"head_start_ray_commands: --dashboard-host={host[1]} opens the job API beyond the head")
    return problems


def rayjob_exposure(job: dict) -> list[str]:
    """A pod (head, worker, the job submitter) without token authentication, or a secret
    written into the manifest instead of read from a Secret."""
    problems = []
    pods = {**pod_specs(job), "submitter": (job["spec"].get("submitterPodTemplate") or {}).get("spec")}
    for role, pod in pods.items():
        if pod is None:
            problems.append(f"{role}: no pod template that carries the token")
            continue
        for container in pod["containers"]:
            env = {item["name"]: item for item in container.get("env", [])}
            if env.get("RAY_AUTH_MODE", {}).get("value") != "token":
                problems.append(f"{role}: RAY_AUTH_MODE is not token")
            if "RAY_AUTH_TOKEN" not in env:
                problems.append(f"{role}: no RAY_AUTH_TOKEN")
            for name, item in env.items():
                if SECRET_NAME.search(name) and "value" in item:
                    problems.append(f"{role}: {name} is written in the manifest, not read from a Secret")
    return problems


def compose_exposure(services: dict) -> list[str]:
    """A secret with a default value, MLflow without its basic-auth app, a port published on
    every interface by a service that does not authenticate."""
    problems = []
    for name, service in services.items():
        values = [str(v) for v in (service.get("environment") or {}).values()]
        command = service.get("command") or []
        values += [command] if isinstance(command, str) else [str(part) for part in command]
        for value in values:
            for variable in re.findall(r"\$\{(\w+):?-[^}]*\}", value):
                if SECRET_NAME.search(variable):
                    problems.append(f"{name}: {variable} has a default value")
    argv = [str(part) for part in services["mlflow"]["command"]]
    authenticated = {"mlflow"} if "--app-name" in argv and argv[argv.index("--app-name") + 1] == "basic-auth" else set()
    if not authenticated:
        problems.append("mlflow: the server runs without --app-name basic-auth")
    for name, service in services.items():
        for port in service.get("ports") or []:
            if str(port).count(":") < 2 and name not in authenticated:  # no host address: every interface
                problems.append(f"{name}: port {port} is published on every interface without authentication")
    return problems


def dockerignore_matches(patterns: list[str], path: str) -> bool:
    """Whether a .dockerignore's patterns keep `path` (relative to the context) out."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        regex = re.escape(glob).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        if re.fullmatch(f"{regex}(?:/.*)?", path):
            ignored = not negated
    return ignored


def ignore_patterns(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


def unignored_secrets(root: Path) -> list[str]:
    """A secret file (`.env`) that git would commit (and so `ray job submit --working-dir .`
    would upload: Ray honours .gitignore) or an image build would copy."""
    problems = []
    scratch = Path(tempfile.mkdtemp())
    try:
        subprocess.run(["git", "init", "-q", str(scratch)], check=True)
        shutil.copy(root / ".gitignore", scratch / ".gitignore")
        for path in SECRET_FILES:
            if subprocess.run(["git", "-C", str(scratch), "check-ignore", "-q", "--no-index", path]).returncode != 0:
                problems.append(f"{path}: git would commit it")
    finally:
        shutil.rmtree(scratch)
    contexts = {root / "cluster" / "Dockerfile.dockerignore": SECRET_FILES,
                root / "cluster" / "mlflow" / ".dockerignore": (".env", "prod.env")}
    for ignore_file, paths in contexts.items():
        for path in paths:
            if not dockerignore_matches(ignore_patterns(ignore_file), path):
                problems.append(f"{path}: the build context of {ignore_file.relative_to(root)} copies it")
    return problems


@pytest.mark.parametrize("name", sorted(LAUNCHER_CONFIGS))
def test_shipped_launcher_configs_authenticate_and_bind_the_job_api_to_loopback(name):
    assert launcher_exposure(load_yaml(CLUSTER / name)) == []


def test_shipped_rayjob_authenticates_every_pod_from_secrets():
    assert rayjob_exposure(rayjob()) == []


def test_shipped_mlflow_recipe_authenticates_and_has_no_default_secret():
    assert compose_exposure(compose()["services"]) == []
    ini = (CLUSTER / "mlflow" / "basic_auth.ini").read_text()
    assert "admin_password" not in ini.replace("# admin_password", "")
    assert "COPY basic_auth.ini" in (CLUSTER / "mlflow" / "Dockerfile").read_text()


def test_shipped_ignore_files_keep_every_secret_file_out_of_git_and_images():
    assert unignored_secrets(ROOT) == []


def _drop_run_option(config: dict, text: str) -> None:
    config["docker"]["run_options"] = [o for o in config["docker"]["run_options"] if text not in o]


LAUNCHER_INSECURE = {
    "dashboard on 0.0.0.0": lambda c: c.update(head_start_ray_commands=[
        cmd.replace("--dashboard-host=127.0.0.1", "--dashboard-host=0.0.0.0") for cmd in c["head_start_ray_commands"]]),
    "no token auth": lambda c: _drop_run_option(c, "RAY_AUTH_MODE"),
    "token never mounted": lambda c: c.update(file_mounts={}),
}


@pytest.mark.parametrize("variant", sorted(LAUNCHER_INSECURE))
@pytest.mark.parametrize("name", sorted(LAUNCHER_CONFIGS))
def test_an_insecure_launcher_config_is_caught(name, variant):
    config = load_yaml(CLUSTER / name)
    LAUNCHER_INSECURE[variant](config)
    assert launcher_exposure(config)


def _worker_env(job: dict) -> list[dict]:
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["env"]


RAYJOB_INSECURE = {
    "a worker without token auth": lambda j: _worker_env(j).__setitem__(
        slice(None), [e for e in _worker_env(j) if e["name"] != "RAY_AUTH_MODE"]),
    "the token written in the manifest": lambda j: _worker_env(j).__setitem__(
        slice(None), [{"name": e["name"], "value": "abc"} if e["name"] == "RAY_AUTH_TOKEN" else e for e in _worker_env(j)]),
    "no submitter template": lambda j: j["spec"].pop("submitterPodTemplate"),
}


@pytest.mark.parametrize("variant", sorted(RAYJOB_INSECURE))
def test_an_insecure_rayjob_is_caught(variant):
    job = copy.deepcopy(rayjob())
    RAYJOB_INSECURE[variant](job)
    assert rayjob_exposure(job)


def _mlflow_without_auth(services: dict) -> None:
    command = [str(p) for p in services["mlflow"]["command"]]
    at = command.index("--app-name")
    services["mlflow"]["command"] = command[:at] + command[at + 2:]


COMPOSE_INSECURE = {
    "a default database password": lambda s: s["postgres"]["environment"].update(POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-mlflow}"),
    "MLflow without authentication": _mlflow_without_auth,
    "MinIO's console on every interface": lambda s: s["minio"].update(ports=["9001:9001"]),
}


@pytest.mark.parametrize("variant", sorted(COMPOSE_INSECURE))
def test_an_insecure_mlflow_recipe_is_caught(variant):
    services = copy.deepcopy(compose()["services"])
    COMPOSE_INSECURE[variant](services)
    assert compose_exposure(services)


IGNORE_FILES = (".gitignore", "cluster/Dockerfile.dockerignore", "cluster/mlflow/.dockerignore")


@pytest.mark.parametrize("ignore_file", IGNORE_FILES)
def test_a_secret_file_an_ignore_file_lets_through_is_caught(ignore_file, tmp_path):
    for path in IGNORE_FILES:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        lines = (ROOT / path).read_text().splitlines()
        if path == ignore_file:
            lines = [line for line in lines if ".env" not in line]
        (tmp_path / path).write_text("\n".join(lines) + "\n")
    assert unignored_secrets(tmp_path)
