"""The Helm chart, linted and rendered by Helm's own Go SDK (PyPI helm-python-sdk), every
rendered object validated against the Kubernetes API schemas (kubernetes-validate)."""

from __future__ import annotations

import base64
import copy
import ipaddress
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from streamer.config import MonitorConfig, load_file
from streamer.sharding import shard_setting
from streamer.sinks.alerts import AlertSettings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "streamer"
CI_VALUES = CHART / "ci" / "two-streams-values.yaml"
KUBE_VERSION = "1.33.0"  # a version whose schemas kubernetes-validate ships
RELEASE = "mon"
NAMESPACE = "monitoring"

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TEST_LABELS = (
    "test.livepeer.io/name",
    "test.livepeer.io/duration",
    "test.livepeer.io/injest_region",
    "test.livepeer.io/playback_region",
)

Obj = dict[str, Any]


def ci_values() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(CI_VALUES.read_text())
    return values


def render(values: dict[str, Any]) -> tuple[list[Obj], dict[str, str]]:
    """(objects, {template path: rendered text})."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[Obj] = []
    for path, text in manifests.items():
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects, manifests


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def by_name(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} objects"
    return matches[0]


def container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container(deployment)["env"]}


def secret_value(objects: list[Obj], name: str, key: str) -> str:
    secret = by_name(objects, "Secret", name)
    return base64.b64decode(secret["data"][key]).decode()


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)


@pytest.fixture(scope="module")
def rendered() -> tuple[list[Obj], dict[str, str]]:
    return render(ci_values())


# --- lint ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", [None, CI_VALUES], ids=["defaults", "two-streams"])
def test_chart_lints_clean(values_file: Path | None) -> None:
    values = yaml.safe_load(values_file.read_text()) if values_file else None
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # severity 2 = warning, 3 = error; only infos (like "icon is recommended") may remain.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_with_no_streams_deploys_nothing_but_explains() -> None:
    objects, manifests = render({})
    assert objects == []
    assert "No streams configured" in manifests["streamer/templates/NOTES.txt"]


# --- the two-streams example ----------------------------------------------------------------


def test_one_deployment_per_stream(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    deployments = of_kind(objects, "Deployment")
    assert sorted(d["metadata"]["name"] for d in deployments) == [
        "mon-streamer-frankfurt-nyc-720p-ladder",
        "mon-streamer-sao-paulo",
    ]
    for d in deployments:
        assert DNS_LABEL.match(d["metadata"]["name"])
        assert d["spec"]["replicas"] == 1
        # Never two publishers on one stream key, not even during a rollout.
        assert d["spec"]["strategy"]["type"] == "Recreate"


def test_pod_labels_identify_the_stream(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    expected = {
        "mon-streamer-frankfurt-nyc-720p-ladder": {
            "test.livepeer.io/name": "Frankfurt-NYC-720p-ladder",
            "test.livepeer.io/duration": "2m",
            "test.livepeer.io/injest_region": "fra",
            "test.livepeer.io/playback_region": "nyc",
        },
        "mon-streamer-sao-paulo": {
            "test.livepeer.io/name": "sao-paulo",
            "test.livepeer.io/duration": "90",
            # ingest_region (the corrected spelling) is accepted too.
            "test.livepeer.io/injest_region": "sao",
            "test.livepeer.io/playback_region": "sao",
        },
    }
    for name, test_labels in expected.items():
        d = by_name(objects, "Deployment", name)
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        for key, value in test_labels.items():
            assert pod_labels[key] == value
        assert pod_labels["app.kubernetes.io/name"] == "streamer"
        assert pod_labels["app.kubernetes.io/instance"] == RELEASE
        assert pod_labels["app.kubernetes.io/managed-by"] == "Helm"
        assert "app.kubernetes.io/version" in pod_labels
        selector = d["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        for value in pod_labels.values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), value


def test_pods_are_annotated_for_prometheus(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    for d in of_kind(objects, "Deployment"):
        annotations = d["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == "9090"
        assert annotations["prometheus.io/path"] == "/metrics"
        ports = container(d)["ports"]
        assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in ports


def test_urls_reach_the_pod_from_the_secret(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    streams = {s["name"]: s for s in ci_values()["streams"]}
    cases = {
        "mon-streamer-frankfurt-nyc-720p-ladder": streams["Frankfurt -> NYC (720p ladder)"],
        "mon-streamer-sao-paulo": streams["sao-paulo"],
    }
    for name, stream in cases.items():
        d = by_name(objects, "Deployment", name)
        env = env_of(d)
        for var, url in (
            ("INJEST_URL", stream.get("injest_url") or stream.get("ingest_url")),
            ("PLAYBACK_URL", stream["playback_url"]),
        ):
            assert "value" not in env[var]
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert secret_value(objects, ref["name"], ref["key"]) == url
        # The monitor reads its stream from the ConfigMap, which names the env vars only.
        assert env["STREAMER_CONFIG"]["value"] == "/etc/streamer/streams.yaml"
        mounts = {m["name"]: m for m in container(d)["volumeMounts"]}
        assert mounts["config"]["mountPath"] == "/etc/streamer"
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        config_map = by_name(objects, "ConfigMap", volumes["config"]["configMap"]["name"])
        config = yaml.safe_load(config_map["data"]["streams.yaml"])
        [entry] = config["streams"]
        assert entry["name"] == stream["name"]
        assert entry["injest_url"] == "${INJEST_URL}"
        assert entry["playback_url"] == "${PLAYBACK_URL}"
        assert str(entry["duration"]) == str(stream["duration"])
        assert entry["injest_region"] == stream.get("injest_region", stream.get("ingest_region"))
        assert entry["playback_region"] == stream["playback_region"]
    # Optional per-stream settings pass through; defaults fill the rest.
    fra = yaml.safe_load(
        by_name(objects, "ConfigMap", "mon-streamer-frankfurt-nyc-720p-ladder")["data"][
            "streams.yaml"
        ]
    )["streams"][0]
    assert fra["grace_period"] == "30s"
    assert fra["expected_renditions"] == 3
    assert fra["startup_timeout"] == "45s"
    assert fra["checks"] == {
        "segment_latency": {"enabled": True, "max_seconds": 15},
        "frame_drop": {"enabled": False},
    }
    sao = yaml.safe_load(
        by_name(objects, "ConfigMap", "mon-streamer-sao-paulo")["data"]["streams.yaml"]
    )["streams"][0]
    assert sao["grace_period"] == "60s"
    assert "checks" not in sao


def test_notifier_secret_and_settings(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    for d in of_kind(objects, "Deployment"):
        env = env_of(d)
        ref = env["DISCORD_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]
        assert (
            secret_value(objects, ref["name"], ref["key"])
            == (ci_values()["notifications"]["discordWebhookUrl"])
        )
        assert env["DASHBOARD_URL"]["value"] == "https://grafana.example.test/d/streamer"
        assert env["ALERT_AFTER_FAILURES"]["value"] == "2"
        assert "SLACK_WEBHOOK_URL" not in env  # not configured: not set


def test_no_secret_in_plain_text_outside_secret_data(
    rendered: tuple[list[Obj], dict[str, str]],
) -> None:
    objects, manifests = rendered
    values = ci_values()
    secrets: list[str] = []
    for stream in values["streams"]:
        for key in ("injest_url", "ingest_url", "playback_url"):
            if key in stream:
                url = stream[key]
                secrets.append(url)
                secrets.append(url.rstrip("/").split("/")[-1])  # the stream key / index
                secrets.append(url.rstrip("/").split("/")[-2])  # the key / playback id
    webhook = values["notifications"]["discordWebhookUrl"]
    secrets += [webhook, webhook.split("/")[-1]]
    secrets = [s for s in set(secrets) if len(s) >= 8 and s != "index.m3u8"]
    assert len(secrets) >= 8
    encoded = [base64.b64encode(s.encode()).decode() for s in secrets]

    # Outside a Secret's data nothing carries them, plain or base64, not even NOTES.txt.
    for obj in objects:
        visible = copy.deepcopy(obj)
        if obj["kind"] == "Secret":
            visible.pop("data", None)
            visible.pop("stringData", None)
        text = yaml.safe_dump(visible)
        for s in secrets + encoded:
            assert s not in text, f"{obj['kind']}/{obj['metadata']['name']} exposes {s!r}"
    notes = manifests["streamer/templates/NOTES.txt"]
    for s in secrets:
        assert s not in notes
    # Even the Secrets hold them only base64-encoded: `helm template` output in CI logs
    # shows no stream key.
    for obj in of_kind(objects, "Secret"):
        for s in secrets:
            assert s not in yaml.safe_dump(obj)
    # And the values did reach a Secret.
    decoded = {
        base64.b64decode(v).decode()
        for obj in of_kind(objects, "Secret")
        for v in obj.get("data", {}).values()
    }
    assert {values["streams"][0]["injest_url"], webhook} <= decoded


def test_pod_hardening(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    for d in of_kind(objects, "Deployment"):
        pod = d["spec"]["template"]["spec"]
        c = container(d)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert sc["runAsNonRoot"] is True
        # The only writable places: the clip cache, /tmp and the alert state, all emptyDirs.
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/cache"]]
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert "emptyDir" in volumes[mounts["/var/lib/streamer"]]
        assert set(mounts) == {"/etc/streamer", "/cache", "/tmp", "/var/lib/streamer"}
        assert all(m.get("readOnly") for m in c["volumeMounts"] if m["name"] == "config")
        assert env_of(d)["STREAMER_CACHE_DIR"]["value"] == "/cache"
        assert env_of(d)["METRICS_ADDR"]["value"] == "0.0.0.0:9090"
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
        assert c["args"] == ["monitor"]


def test_scheduling_values_reach_the_pods() -> None:
    values = ci_values()
    values["nodeSelector"] = {"pool": "monitoring"}
    values["tolerations"] = [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]
    values["affinity"] = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    values["streams"][1]["nodeSelector"] = {"pool": "sao"}
    values["streams"][1]["resources"] = {"requests": {"cpu": "250m"}}
    objects, _ = render(values)
    fra = by_name(objects, "Deployment", "mon-streamer-frankfurt-nyc-720p-ladder")
    sao = by_name(objects, "Deployment", "mon-streamer-sao-paulo")
    assert fra["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "monitoring"}
    assert sao["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "sao"}
    for d in (fra, sao):
        assert d["spec"]["template"]["spec"]["tolerations"] == values["tolerations"]
        assert d["spec"]["template"]["spec"]["affinity"] == values["affinity"]
    assert container(sao)["resources"] == {"requests": {"cpu": "250m"}}
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_service_monitor_selects_the_metrics_service(
    rendered: tuple[list[Obj], dict[str, str]],
) -> None:
    objects, _ = rendered
    [monitor] = of_kind(objects, "ServiceMonitor")
    [service] = of_kind(objects, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert set(monitor["spec"]["podTargetLabels"]) == set(TEST_LABELS)
    # job label "streamer", as the alert rules expect (up{job="streamer"}).
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "streamer"
    assert service["spec"]["clusterIP"] == "None"
    for d in of_kind(objects, "Deployment"):
        pod_labels = d["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()


def test_service_monitor_is_optional() -> None:
    values = ci_values()
    values["serviceMonitor"]["enabled"] = False
    objects, _ = render(values)
    assert of_kind(objects, "ServiceMonitor") == []
    assert of_kind(objects, "Service") == []
    assert len(of_kind(objects, "Deployment")) == 2


def test_every_object_is_valid_kubernetes(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "ConfigMap",
        "ConfigMap",
        "Deployment",
        "Deployment",
        "Secret",
        "Secret",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    for obj in objects:
        if obj["kind"] == "ServiceMonitor":
            continue  # a CRD: no schema shipped; checked field by field above
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        assert DNS_LABEL.match(obj["metadata"]["name"]), obj["metadata"]["name"]
        for value in obj["metadata"].get("labels", {}).values():
            assert len(value) <= 63 and LABEL_VALUE.match(value)


def test_invalid_object_is_caught_by_the_validator(
    rendered: tuple[list[Obj], dict[str, str]],
) -> None:
    # The validator itself must be able to fail (strict: unknown fields are errors).
    objects, _ = rendered
    broken = copy.deepcopy(of_kind(objects, "Deployment")[0])
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)


# --- label sanitising, names ---------------------------------------------------------------


def test_awkward_names_and_regions_become_valid_labels() -> None:
    long_region = "region/" + "x" * 80
    values = {
        "streams": [
            {
                "name": "  ..Ünïcode & spaces / slashes -- and a tail that is much too long "
                "for any label value at all..",
                "duration": "1m30s",
                "injest_region": "-eu west-",
                "playback_region": long_region,
                "injest_url": "rtmp://i.example.test/live/abcdefgh",
                "playback_url": "https://p.example.test/hls/abcdefgh/index.m3u8",
            }
        ]
    }
    objects, _ = render(values)
    [d] = of_kind(objects, "Deployment")
    labels = d["spec"]["template"]["metadata"]["labels"]
    for key in TEST_LABELS:
        value = labels[key]
        assert 0 < len(value) <= 63 and LABEL_VALUE.match(value), (key, value)
    assert labels["test.livepeer.io/injest_region"] == "eu-west"
    assert labels["test.livepeer.io/duration"] == "1m30s"
    assert len(d["metadata"]["name"]) <= 63 and DNS_LABEL.match(d["metadata"]["name"])
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_streams_whose_names_collide_are_refused() -> None:
    values = ci_values()
    values["streams"][1]["name"] = "FRANKFURT nyc 720P ladder"
    with pytest.raises(helm.HelmRenderError, match="same object name"):
        render(values)


# --- Livepeer API mode ---------------------------------------------------------------------


def livepeer_stream(**extra: Any) -> dict[str, Any]:
    return {
        "name": "studio",
        "duration": "2m",
        "injest_region": "auto",
        "playback_region": "auto",
        "livepeer": {
            "api_url": "https://api.example.test/api",
            "profiles": [{"name": "720p", "width": 1280, "height": 720, "bitrate": 2000000}],
            "playback_policy": "jwt",
            "record": False,
            **extra,
        },
    }


def test_livepeer_api_mode_takes_the_key_from_the_charts_secret() -> None:
    api_key = "lp-api-key-0123456789abcdef"
    signing_key = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIabc\n-----END EC PRIVATE KEY-----\n"
    objects, manifests = render(
        {
            "streams": [livepeer_stream()],
            "livepeer": {"apiKey": api_key, "signingKey": signing_key, "signingKeyId": "kid-1"},
        }
    )
    [d] = of_kind(objects, "Deployment")
    env = env_of(d)
    assert "INJEST_URL" not in env and "PLAYBACK_URL" not in env
    ref = env["LIVEPEER_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret_value(objects, ref["name"], ref["key"]) == api_key
    ref = env["LIVEPEER_SIGNING_KEY"]["valueFrom"]["secretKeyRef"]
    assert secret_value(objects, ref["name"], ref["key"]) == signing_key
    assert env["LIVEPEER_SIGNING_KEY_ID"]["value"] == "kid-1"
    [config_map] = of_kind(objects, "ConfigMap")
    [entry] = yaml.safe_load(config_map["data"]["streams.yaml"])["streams"]
    assert entry["livepeer"] == {
        "api_url": "https://api.example.test/api",
        "profiles": [{"name": "720p", "width": 1280, "height": 720, "bitrate": 2000000}],
        "playback_policy": "jwt",
        "record": False,
    }
    assert "injest_url" not in entry
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert api_key not in text and "MHcCAQEEIabc" not in text
    assert api_key not in "".join(manifests.values())


def test_livepeer_api_mode_with_an_existing_secret() -> None:
    objects, _ = render(
        {
            "streams": [
                livepeer_stream(existingSecret="studio-keys", existingSecretKey="api-key"),
                {**livepeer_stream(), "name": "studio-2"},
            ],
            "livepeer": {"existingSecret": "shared-keys"},
        }
    )
    assert of_kind(objects, "Secret") == []
    refs = {
        d["metadata"]["name"]: env_of(d)["LIVEPEER_API_KEY"]["valueFrom"]["secretKeyRef"]
        for d in of_kind(objects, "Deployment")
    }
    assert refs == {
        "mon-streamer-studio": {"name": "studio-keys", "key": "api-key"},
        "mon-streamer-studio-2": {"name": "shared-keys", "key": "LIVEPEER_API_KEY"},
    }
    [entry] = yaml.safe_load(
        by_name(objects, "ConfigMap", "mon-streamer-studio")["data"]["streams.yaml"]
    )["streams"]
    assert "existingSecret" not in entry["livepeer"]


def test_livepeer_api_mode_without_a_key_is_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match="no API key"):
        render({"streams": [livepeer_stream()]})


def test_urls_from_an_existing_secret() -> None:
    objects, _ = render(
        {
            "streams": [
                {
                    "name": "kept-elsewhere",
                    "duration": "2m",
                    "injest_region": "eu",
                    "playback_region": "eu",
                    "existingSecret": "my-stream-urls",
                }
            ]
        }
    )
    assert of_kind(objects, "Secret") == []
    env = env_of(of_kind(objects, "Deployment")[0])
    assert env["INJEST_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "my-stream-urls",
        "key": "INJEST_URL",
    }
    assert env["PLAYBACK_URL"]["valueFrom"]["secretKeyRef"]["name"] == "my-stream-urls"


# --- values schema -------------------------------------------------------------------------

VALID = {
    "name": "ok",
    "injest_url": "rtmp://i.example.test/live/key",
    "playback_url": "https://p.example.test/hls/id/index.m3u8",
}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "no-ingest", "playback_url": VALID["playback_url"]}, "injest_url"),
        ({"name": "no-playback", "injest_url": VALID["injest_url"]}, "playback_url"),
        ({**VALID, "name": ""}, "name"),
        ({"injest_url": VALID["injest_url"], "playback_url": VALID["playback_url"]}, "name"),
        ({**VALID, "injest_ulr": "rtmp://typo/live/x"}, "injest_ulr"),
        ({**VALID, "injest_url": "https://not-rtmp.example.test/x"}, "injest_url"),
        ({**VALID, "duration": "two minutes"}, "duration"),
        ({**VALID, "livepeer": {"api_url": "https://a.example.test"}}, "not"),
        ({"name": "lp", "livepeer": {"playback_policy": "secret"}}, "playback_policy"),
        ({**VALID, "checks": {"segment_latency": {"enabled": "yes"}}}, "enabled"),
        ({**VALID, "expected_renditions": ["720p"]}, "expected_renditions"),
        ({"name": "lp", "livepeer": {"api_key": "x"}}, "api_key"),
        ({**VALID, "name": "x" * 101}, "name"),
    ],
    ids=[
        "missing-injest_url",
        "missing-playback_url",
        "empty-name",
        "missing-name",
        "typo",
        "ingest-not-rtmp",
        "bad-duration",
        "livepeer-and-url",
        "bad-playback-policy",
        "check-enabled-not-bool",
        "renditions-not-a-count",
        "livepeer-unknown-key",
        "name-too-long",
    ],
)
def test_schema_rejects_bad_stream_entries(entry: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match=message):
            chart.validate_schema({"streams": [entry]})
        with pytest.raises(helm.HelmError):
            chart.render({"streams": [entry]}, name=RELEASE, namespace=NAMESPACE)
    report = helm.lint(CHART, {"streams": [entry]}, namespace=NAMESPACE)
    assert report["errors"], "helm lint must report the bad values"


@pytest.mark.parametrize(
    "entry",
    [
        VALID,
        {**VALID, "injest_url": None, "ingest_url": VALID["injest_url"]},
        {**VALID, "duration": 120, "grace_period": "1m30s", "expected_renditions": 3},
        {"name": "secret-urls", "existingSecret": "urls"},
        {"name": "lp", "livepeer": {"playback_policy": "public"}},
    ],
    ids=["original-shape", "ingest-spelling", "numbers", "existing-secret", "livepeer"],
)
def test_schema_accepts_good_stream_entries(entry: dict[str, Any]) -> None:
    entry = {k: v for k, v in entry.items() if v is not None}
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema({"streams": [entry]})


def test_ci_values_and_defaults_pass_the_schema() -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(ci_values())
        chart.validate_schema(None)
        assert chart.schema is not None
        assert chart.name == "streamer"


# --- what the pod sees, read by the monitor's own config loader ------------------------------


def pod_environment(objects: list[Obj], deployment: Obj) -> dict[str, str]:
    """The container's environment as the kubelet would build it from the rendered objects."""
    env: dict[str, str] = {}
    for var in container(deployment)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secret_value(objects, ref["name"], ref["key"])
    return env


def load_pod_config(objects: list[Obj], deployment: Obj, tmp_path: Path) -> MonitorConfig:
    env = pod_environment(objects, deployment)
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config_map = by_name(objects, "ConfigMap", volumes["config"]["configMap"]["name"])
    path = tmp_path / Path(env["STREAMER_CONFIG"]).name
    path.write_text(config_map["data"]["streams.yaml"])
    return load_file(path, env)


def test_the_monitor_loads_what_the_chart_renders(
    rendered: tuple[list[Obj], dict[str, str]], tmp_path: Path
) -> None:
    objects, _ = rendered
    fra = load_pod_config(
        objects, by_name(objects, "Deployment", "mon-streamer-frankfurt-nyc-720p-ladder"), tmp_path
    )
    [stream] = fra.streams
    values = ci_values()["streams"][0]
    assert stream.name == values["name"]
    assert stream.ingest_url == values["injest_url"]
    assert stream.playback_url == values["playback_url"]
    assert stream.duration == 120
    assert stream.grace_period == 30
    assert stream.startup_timeout == 45
    assert (stream.ingest_region, stream.playback_region) == ("fra", "nyc")
    assert stream.expected_renditions == 3
    assert stream.checks["segment_latency"] == {"enabled": True, "max_seconds": 15}
    assert fra.metrics_addr == "0.0.0.0:9090"

    sao = load_pod_config(
        objects, by_name(objects, "Deployment", "mon-streamer-sao-paulo"), tmp_path
    )
    [stream] = sao.streams
    assert stream.ingest_url == ci_values()["streams"][1]["ingest_url"]
    assert stream.duration == 90
    assert stream.grace_period == 60
    assert (stream.ingest_region, stream.playback_region) == ("sao", "sao")


def test_the_monitor_loads_a_livepeer_mode_stream(tmp_path: Path) -> None:
    objects, _ = render({"streams": [livepeer_stream(apiKey="lp-key-123456789")], "livepeer": {}})
    [deployment] = of_kind(objects, "Deployment")
    config = load_pod_config(objects, deployment, tmp_path)
    [stream] = config.streams
    assert stream.livepeer is not None
    assert stream.livepeer.api_url == "https://api.example.test/api"
    assert stream.livepeer.playback_policy == "jwt"
    assert stream.ingest_url is None
    assert pod_environment(objects, deployment)["LIVEPEER_API_KEY"] == "lp-key-123456789"


# --- alert state ---------------------------------------------------------------------------


def test_alert_state_is_on_an_emptydir_by_default(
    rendered: tuple[list[Obj], dict[str, str]],
) -> None:
    objects, _ = rendered
    assert of_kind(objects, "PersistentVolumeClaim") == []
    for d in of_kind(objects, "Deployment"):
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        assert volumes["alert-state"]["emptyDir"] == {"sizeLimit": "16Mi"}
        # The monitor's own settings reader puts the file on that volume.
        settings = AlertSettings.from_env(pod_environment(objects, d))
        assert settings.state_file is not None
        assert str(settings.state_file.parent) == mounts["alert-state"]


def test_alert_state_on_a_persistent_volume_claim_per_stream() -> None:
    values = ci_values()
    values["streams"].append({**VALID, "name": "a-very-long-stream-name-" + "x" * 60})
    values["alertState"] = {
        "persistence": {"enabled": True, "size": "1Gi", "storageClass": "fast-ssd"}
    }
    objects, _ = render(values)
    claims = {c["metadata"]["name"]: c for c in of_kind(objects, "PersistentVolumeClaim")}
    deployments = of_kind(objects, "Deployment")
    assert len(claims) == len(deployments) == 3
    for d in deployments:
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        claim = claims[volumes["alert-state"]["persistentVolumeClaim"]["claimName"]]
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert claim["spec"]["storageClassName"] == "fast-ssd"
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        # One claim per stream, labelled like its Deployment.
        test_labels = {k: v for k, v in d["metadata"]["labels"].items() if k in TEST_LABELS}
        assert test_labels.items() <= claim["metadata"]["labels"].items()
        # Recreate: the old pod lets go of the ReadWriteOnce volume before the new one starts.
        assert d["spec"]["strategy"]["type"] == "Recreate"
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            assert len(obj["metadata"]["name"]) <= 63
            assert DNS_LABEL.match(obj["metadata"]["name"]), obj["metadata"]["name"]
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["errors"] == []


@pytest.mark.parametrize(("storage_class", "expected"), [("", None), ("-", "")])
def test_alert_state_claim_storage_class(storage_class: str, expected: str | None) -> None:
    values = ci_values()
    values["alertState"] = {"persistence": {"enabled": True, "storageClass": storage_class}}
    objects, _ = render(values)
    for claim in of_kind(objects, "PersistentVolumeClaim"):
        # "" leaves the cluster's default class; "-" asks for no class (static volumes).
        assert claim["spec"].get("storageClassName") == expected
        assert claim["spec"]["resources"]["requests"]["storage"] == "64Mi"


# --- egress NetworkPolicy ----------------------------------------------------------------------


def egress_allows(policy: Obj, address: str, port: int, protocol: str = "TCP") -> bool:
    """Whether an ipBlock/port egress rule of `policy` lets a pod connect to address:port."""
    ip = ipaddress.ip_address(address)
    for rule in policy["spec"].get("egress") or []:
        ports = rule.get("ports")
        if ports and not any(
            p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports
        ):
            continue
        for peer in rule.get("to") or []:
            block = peer.get("ipBlock")
            if block is None:
                continue
            network = ipaddress.ip_network(block["cidr"])
            if ip.version != network.version or ip not in network:
                continue
            if not any(ip in ipaddress.ip_network(e) for e in block.get("except", [])):
                return True
    return False


def network_policy(values: dict[str, Any]) -> Obj:
    objects, _ = render(values)
    [policy] = of_kind(objects, "NetworkPolicy")
    kubernetes_validate.validate(policy, KUBE_VERSION, strict=True)
    return policy


def test_network_policy_is_off_by_default(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    assert of_kind(objects, "NetworkPolicy") == []


def test_egress_network_policy_allows_the_internet_and_dns_only() -> None:
    values = ci_values()
    values["networkPolicy"] = {"enabled": True}
    objects, _ = render(values)
    [policy] = of_kind(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Egress"]  # scraping (ingress) is left alone
    selector = policy["spec"]["podSelector"]["matchLabels"]
    for d in of_kind(objects, "Deployment"):
        assert selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    # Platforms on the internet: RTMP, RTMPS/HTTPS, HTTP.
    for address, port in (("203.0.113.7", 1935), ("198.51.100.1", 443), ("2001:db8::1", 80)):
        assert egress_allows(policy, address, port), (address, port)
    assert egress_allows(policy, "203.0.113.7", 2935, "UDP"), "SRT ingest"
    assert not egress_allows(policy, "10.0.0.7", 2935, "UDP")
    # Never the cloud metadata service, the cluster's private ranges, or other ports.
    for address, port in (
        ("169.254.169.254", 80),
        ("10.96.0.1", 443),
        ("172.20.1.1", 443),
        ("192.168.1.10", 1935),
        ("100.64.0.1", 443),
        ("fd00::1", 443),
        ("fe80::1", 80),
        ("203.0.113.7", 22),
    ):
        assert not egress_allows(policy, address, port), (address, port)
    # DNS to the cluster's resolver, over UDP and TCP.
    [dns] = [r for r in policy["spec"]["egress"] if "namespaceSelector" in r["to"][0]]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_egress_network_policy_takes_custom_destinations() -> None:
    values = ci_values()
    origin_rule = {
        "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "origin"}}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }
    values["networkPolicy"] = {
        "enabled": True,
        "egress": [{"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}],
        "ports": [],
        "dns": {"enabled": False},
        "extraEgress": [origin_rule],
    }
    policy = network_policy(values)
    assert policy["spec"]["egress"] == [
        {"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}]},
        origin_rule,
    ]
    assert egress_allows(policy, "203.0.113.7", 1936)  # no port list: every port
    assert not egress_allows(policy, "203.0.113.200", 443)
    assert not egress_allows(policy, "198.51.100.1", 443)

    values["networkPolicy"] = {"enabled": True, "egress": [], "dns": {"enabled": False}}
    assert network_policy(values)["spec"]["egress"] == []  # nothing at all


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"networkPolicy": {"enabled": "yes"}}, "enabled"),
        ({"networkPolicy": {"egress": [{"cidr": "the internet"}]}}, "cidr"),
        ({"networkPolicy": {"egress": [{"cidr": "0.0.0.0/0", "exept": []}]}}, "exept"),
        ({"networkPolicy": {"ports": [{"port": 70000}]}}, "port"),
        ({"networkPolicy": {"ports": [{"port": 443, "protocol": "tcp"}]}}, "protocol"),
        ({"alertState": {"persistence": {"enabled": True, "size": "lots"}}}, "size"),
        ({"alertState": {"persistence": {"accessModes": ["ReadWriteSometimes"]}}}, "accessModes"),
        ({"alertState": {"persistance": {"enabled": True}}}, "persistance"),
    ],
    ids=[
        "np-enabled-not-bool",
        "np-bad-cidr",
        "np-typo",
        "np-port-range",
        "np-protocol-case",
        "pvc-bad-size",
        "pvc-bad-access-mode",
        "alert-state-typo",
    ],
)
def test_schema_rejects_bad_alert_state_and_network_policy(
    values: dict[str, Any], message: str
) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match=message):
        chart.validate_schema({**ci_values(), **values})


# --- layout sharded: one StatefulSet shares the streams -------------------------------------

SHARD_ENV_VARS = ("STREAMER_SHARD", "POD_INDEX", "POD_NAME")


def sharded_values(streams: int | None = None, **extra: Any) -> dict[str, Any]:
    """The two-streams example (or `streams` generated ones) in the sharded layout."""
    values = ci_values()
    values.update({"layout": "sharded", "replicas": 3, **extra})
    if streams is not None:
        values["streams"] = [
            {
                **VALID,
                "name": f"region-{i % 5}-path-{i:04d}",
                "injest_url": f"rtmp://i.example.test/live/key{i:04d}secret",
            }
            for i in range(streams)
        ]
    return values


def statefulset(objects: list[Obj]) -> Obj:
    [sts] = of_kind(objects, "StatefulSet")
    return sts


def shard_pod_environment(
    objects: list[Obj], sts: Obj, ordinal: int, *, pod_index_label: bool
) -> dict[str, str]:
    """A shard pod's environment as the kubelet builds it: values, secretKeyRefs, the
    downward API (the pod-index label exists from Kubernetes 1.28 on; before, the env var
    is empty) and envFrom Secrets."""
    c = container(sts)
    pod_labels = dict(sts["spec"]["template"]["metadata"]["labels"])
    if pod_index_label:
        pod_labels["apps.kubernetes.io/pod-index"] = str(ordinal)
    pod_name = f"{sts['metadata']['name']}-{ordinal}"
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        secret = by_name(objects, "Secret", source["secretRef"]["name"])
        env.update({k: base64.b64decode(v).decode() for k, v in secret["data"].items()})
    for var in c["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = secret_value(objects, ref["name"], ref["key"])
        else:
            path = var["valueFrom"]["fieldRef"]["fieldPath"]
            if path == "metadata.name":
                env[var["name"]] = pod_name
            else:
                label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
                assert label, path
                env[var["name"]] = pod_labels.get(label.group(1), "")
    return env


def load_shard_config(
    objects: list[Obj], ordinal: int, tmp_path: Path, *, pod_index_label: bool = True
) -> tuple[MonitorConfig, list[str]]:
    """The whole streams file as the monitor loads it in that pod, and the names it takes."""
    sts = statefulset(objects)
    env = shard_pod_environment(objects, sts, ordinal, pod_index_label=pod_index_label)
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    config_map = by_name(objects, "ConfigMap", volumes["config"]["configMap"]["name"])
    path = tmp_path / Path(env["STREAMER_CONFIG"]).name
    path.write_text(config_map["data"]["streams.yaml"])
    config = load_file(path, env)
    shard = shard_setting(None, env)
    assert shard is not None
    assert shard.count == sts["spec"]["replicas"]
    return config, [s.name for s in shard.select(config.streams)]


def test_sharded_layout_renders_a_valid_statefulset_and_lints_clean() -> None:
    values = sharded_values()
    objects, manifests = render(values)
    assert sorted(o["kind"] for o in objects) == [
        "ConfigMap",
        "PodDisruptionBudget",
        "Secret",
        "Secret",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
        "StatefulSet",
    ]
    for obj in objects:
        if obj["kind"] != "ServiceMonitor":
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            assert DNS_LABEL.match(obj["metadata"]["name"]), obj["metadata"]["name"]
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.33.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
    assert "statefulset/mon-streamer" in manifests["streamer/templates/NOTES.txt"]


def test_statefulset_shape() -> None:
    objects, _ = render(sharded_values())
    sts = statefulset(objects)
    spec = sts["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    # The governing Service is the headless metrics Service (the ServiceMonitor's too).
    service = by_name(objects, "Service", spec["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # A shard pod carries the shard count; its index is the pod-index label Kubernetes sets.
    assert pod_labels["test.livepeer.io/shards"] == "3"
    assert not set(TEST_LABELS) & set(pod_labels)  # no one stream's labels on a shard pod
    # Never a shard label on the stream series: the ServiceMonitor copies none.
    [monitor] = of_kind(objects, "ServiceMonitor")
    assert not any(
        "shard" in label or "pod-index" in label for label in monitor["spec"]["podTargetLabels"]
    )
    # All pods mount the same streams file.
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    [config_map] = of_kind(objects, "ConfigMap")
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    names = [s["name"] for s in yaml.safe_load(config_map["data"]["streams.yaml"])["streams"]]
    assert names == [s["name"] for s in ci_values()["streams"]]
    c = container(sts)
    assert c["args"] == ["monitor"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["template"]["spec"]["automountServiceAccountToken"] is False


def test_statefulset_pod_index_wiring() -> None:
    objects, _ = render(sharded_values(replicas=4))
    env = {e["name"]: e for e in container(statefulset(objects))["env"]}
    assert env["STREAMER_SHARD"]["value"] == "auto/4"
    assert env["POD_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


@pytest.mark.parametrize("pod_index_label", [True, False], ids=["pod-index-label", "pod-name"])
def test_the_shard_pods_split_the_streams(pod_index_label: bool, tmp_path: Path) -> None:
    """What every pod of the StatefulSet would monitor, read by the monitor's own config
    loader and shard setting: each stream by exactly one pod."""
    objects, _ = render(sharded_values(streams=30, replicas=4))
    taken: list[str] = []
    for ordinal in range(4):
        config, names = load_shard_config(
            objects, ordinal, tmp_path, pod_index_label=pod_index_label
        )
        assert len(config.streams) == 30  # every pod reads (and validates) the whole file
        assert names, f"shard {ordinal} took no stream of 30"
        taken += names
    assert sorted(taken) == sorted(f"region-{i % 5}-path-{i:04d}" for i in range(30))
    config, _ = load_shard_config(objects, 0, tmp_path)
    first = config.streams[7]
    assert first.ingest_url == "rtmp://i.example.test/live/key0007secret"
    assert first.playback_url == VALID["playback_url"]


def test_sharded_secrets_stay_in_secrets() -> None:
    values = sharded_values(streams=5)
    objects, manifests = render(values)
    keys = [f"key{i:04d}secret" for i in range(5)]
    for obj in objects:
        visible = copy.deepcopy(obj)
        if obj["kind"] == "Secret":
            visible.pop("data", None)
        text = yaml.safe_dump(visible)
        for key in keys:
            assert key not in text, f"{obj['kind']}/{obj['metadata']['name']} exposes {key}"
    assert not any(key in text for key in keys for text in manifests.values())
    [config_map] = of_kind(objects, "ConfigMap")
    entries = yaml.safe_load(config_map["data"]["streams.yaml"])["streams"]
    assert entries[3]["injest_url"] == "${STREAM_3_INJEST_URL}"
    secret = by_name(objects, "Secret", "mon-streamer-streams")
    assert base64.b64decode(secret["data"]["STREAM_3_INJEST_URL"]).decode().endswith(keys[3])
    c = container(statefulset(objects))
    assert c["envFrom"] == [{"secretRef": {"name": "mon-streamer-streams"}}]


def test_sharded_existing_secrets_and_livepeer_streams(tmp_path: Path) -> None:
    values = {
        "layout": "sharded",
        "replicas": 2,
        "streams": [
            {"name": "own-urls", "existingSecret": "lon-urls"},
            livepeer_stream(apiKey="per-stream-key-123456"),
            {**livepeer_stream(existingSecret="team-keys", existingSecretKey="k"), "name": "team"},
            {**livepeer_stream(), "name": "shared-key"},
        ],
        "livepeer": {"existingSecret": "shared-keys"},
    }
    objects, _ = render(values)
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    sts = statefulset(objects)
    # Without a ServiceMonitor the headless Service is still there: the StatefulSet needs it.
    assert by_name(objects, "Service", sts["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    env = {e["name"]: e for e in container(sts)["env"]}
    assert env["STREAM_0_INJEST_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "lon-urls",
        "key": "INJEST_URL",
    }
    assert env["STREAM_2_LIVEPEER_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "team-keys",
        "key": "k",
    }
    assert env["LIVEPEER_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "shared-keys",
        "key": "LIVEPEER_API_KEY",
    }
    assert "LIVEPEER_SIGNING_KEY" not in env  # none configured
    entries = yaml.safe_load(of_kind(objects, "ConfigMap")[0]["data"]["streams.yaml"])["streams"]
    assert entries[1]["livepeer"]["api_key"] == "${STREAM_1_LIVEPEER_API_KEY}"
    assert "api_key" not in entries[3]["livepeer"]
    assert "apiKey" not in entries[1]["livepeer"]
    # The monitor reads the file with what the kubelet would give it.
    pod_env = {
        "STREAM_0_INJEST_URL": "rtmp://i.example.test/live/k",
        "STREAM_0_PLAYBACK_URL": VALID["playback_url"],
        "STREAM_1_LIVEPEER_API_KEY": "per-stream-key-123456",
        "STREAM_2_LIVEPEER_API_KEY": "team-key",
    }
    secret = by_name(objects, "Secret", "mon-streamer-streams")
    assert base64.b64decode(secret["data"]["STREAM_1_LIVEPEER_API_KEY"]) == b"per-stream-key-123456"
    path = tmp_path / "streams.yaml"
    path.write_text(of_kind(objects, "ConfigMap")[0]["data"]["streams.yaml"])
    config = load_file(path, pod_env)
    keys = [s.livepeer.api_key for s in config.streams if s.livepeer is not None]
    assert [k.get_secret_value() if k else None for k in keys] == [
        "per-stream-key-123456",
        "team-key",
        None,  # from LIVEPEER_API_KEY
    ]


def test_per_stream_pod_settings_are_refused_in_the_sharded_layout() -> None:
    values = sharded_values()
    values["streams"][1]["resources"] = {"requests": {"cpu": "1"}}
    with pytest.raises(helm.HelmRenderError, match='stream "sao-paulo" sets resources'):
        render(values)


def test_pod_disruption_budget() -> None:
    objects, _ = render(sharded_values())
    [pdb] = of_kind(objects, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = statefulset(objects)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    values = sharded_values()
    values["sharded"] = {"podDisruptionBudget": {"enabled": True, "maxUnavailable": "50%"}}
    [pdb] = of_kind(render(values)[0], "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == "50%"
    kubernetes_validate.validate(pdb, KUBE_VERSION, strict=True)
    values["sharded"] = {"podDisruptionBudget": {"enabled": False}}
    assert of_kind(render(values)[0], "PodDisruptionBudget") == []


def test_the_default_layout_is_unchanged(rendered: tuple[list[Obj], dict[str, str]]) -> None:
    objects, _ = rendered
    assert of_kind(objects, "StatefulSet") == of_kind(objects, "PodDisruptionBudget") == []
    for d in of_kind(objects, "Deployment"):
        names = {e["name"] for e in container(d)["env"]}
        assert not names & {*SHARD_ENV_VARS, "STREAMER_DECODE_MODE"}


def test_sharded_alert_state_per_pod() -> None:
    objects, _ = render(sharded_values())
    sts = statefulset(objects)
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["alert-state"]["emptyDir"] == {"sizeLimit": "16Mi"}
    assert "volumeClaimTemplates" not in sts["spec"]

    values = sharded_values()
    values["alertState"] = {"persistence": {"enabled": True, "storageClass": "fast-ssd"}}
    objects, _ = render(values)
    sts = statefulset(objects)
    kubernetes_validate.validate(sts, KUBE_VERSION, strict=True)
    assert of_kind(objects, "PersistentVolumeClaim") == []  # the StatefulSet makes them
    [claim] = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "alert-state"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "64Mi"
    c = container(sts)
    volume_names = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "alert-state" not in volume_names  # the claim template provides it
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    settings = AlertSettings.from_env({k: v for k, v in env.items() if v is not None})
    assert settings.state_file is not None
    assert str(settings.state_file.parent) == mounts["alert-state"]


def test_network_policy_covers_the_shard_pods() -> None:
    values = sharded_values()
    values["networkPolicy"] = {"enabled": True}
    objects, _ = render(values)
    [policy] = of_kind(objects, "NetworkPolicy")
    pod_labels = statefulset(objects)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert egress_allows(policy, "203.0.113.7", 1935)
    assert not egress_allows(policy, "169.254.169.254", 80)


def shard_resources(streams: int, replicas: int, **extra: Any) -> Obj:
    objects, _ = render(sharded_values(streams=streams, replicas=replicas, **extra))
    resources: Obj = container(statefulset(objects))["resources"]
    return resources


@pytest.mark.parametrize(
    ("streams", "replicas", "mode", "cpu", "memory", "limit"),
    [
        # docs/scale.md: base + per stream x ceil(streams / replicas).
        (12, 3, "keyframe", "82m", "154Mi", "512Mi"),
        (12, 3, "", "170m", "154Mi", "512Mi"),  # the default decode mode: full
        (100, 1, "keyframe", "850m", "250Mi", "512Mi"),
        (1000, 10, "keyframe", "850m", "250Mi", "512Mi"),
        (1000, 34, "", "950m", "180Mi", "512Mi"),
        (1000, 3, "keyframe", "2722m", "484Mi", "968Mi"),
    ],
)
def test_shard_requests_are_sized_from_the_streams_per_pod(
    streams: int, replicas: int, mode: str, cpu: str, memory: str, limit: str
) -> None:
    resources = shard_resources(streams, replicas, decodeMode=mode)
    assert resources == {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": limit}}


def test_shard_resources_can_be_set_and_decode_mode_reaches_the_pod() -> None:
    given = {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert shard_resources(12, 3, sharded={"resources": given}) == given
    objects, _ = render(sharded_values(decodeMode="keyframe"))
    env = {e["name"]: e.get("value") for e in container(statefulset(objects))["env"]}
    assert env["STREAMER_DECODE_MODE"] == "keyframe"
    objects, _ = render({**ci_values(), "decodeMode": "keyframe"})
    for d in of_kind(objects, "Deployment"):
        assert env_of(d)["STREAMER_DECODE_MODE"]["value"] == "keyframe"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"layout": "Sharded"}, "layout"),
        ({"layout": "perPod"}, "layout"),
        ({"replicas": 0}, "replicas"),
        ({"replicas": -1}, "replicas"),
        ({"replicas": "3"}, "replicas"),
        ({"replicas": 2.5}, "replicas"),
        ({"replicas": 1025}, "replicas"),
        ({"decodeMode": "fast"}, "decodeMode"),
        ({"sharded": {"replica": 3}}, "replica"),
        ({"sharded": {"podDisruptionBudget": {"maxUnavailable": 0}}}, "maxUnavailable"),
        ({"sharded": {"podDisruptionBudget": {"maxUnavailable": "0%"}}}, "maxUnavailable"),
        ({"sharded": {"sizing": {"baseMemoryMi": 0}}}, "baseMemoryMi"),
        ({"sharded": {"sizing": {"cpuMillisPerStream": {"fast": 1}}}}, "fast"),
    ],
    ids=[
        "layout-case",
        "layout-unknown",
        "replicas-zero",
        "replicas-negative",
        "replicas-string",
        "replicas-fraction",
        "replicas-too-many",
        "decode-mode",
        "sharded-typo",
        "pdb-zero",
        "pdb-zero-percent",
        "sizing-zero",
        "sizing-unknown-mode",
    ],
)
def test_schema_rejects_bad_shard_settings(values: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError, match=message):
            chart.validate_schema({**ci_values(), **values})
        with pytest.raises(helm.HelmError):
            chart.render({**ci_values(), **values}, name=RELEASE, namespace=NAMESPACE)


# --- WebRTC playback settings ----------------------------------------------------------------

WHEP_URL = "https://edge.example.test/webrtc/playbackid0042"
TURN = "turn:user:turnsecret99@turn.example.test:3478"
WEBRTC_STREAM = {
    **VALID,
    "playback": ["hls", "webrtc"],
    "whep_url": WHEP_URL,
    "freeze_ms": 750,
}


def test_webrtc_settings_reach_the_monitor_and_their_secrets_stay_in_secrets(
    tmp_path: Path,
) -> None:
    values = {"streams": [WEBRTC_STREAM], "webrtc": {"iceServers": ["stun:s.example:3478", TURN]}}
    objects, _ = render(values)
    [deployment] = of_kind(objects, "Deployment")
    [stream] = load_pod_config(objects, deployment, tmp_path).streams
    assert stream.playback == ["hls", "webrtc"]
    assert stream.whep_url == WHEP_URL
    assert stream.freeze_ms == 750
    assert stream.ice_servers == ["stun:s.example:3478", TURN]
    env = env_of(deployment)
    assert env["WHEP_URL"]["valueFrom"]["secretKeyRef"]["key"] == "WHEP_URL"
    assert env["ICE_SERVERS"]["valueFrom"]["secretKeyRef"]["key"] == "ICE_SERVERS"
    for obj in objects:
        if obj["kind"] != "Secret":
            text = yaml.safe_dump(obj)
            assert "playbackid0042" not in text and "turnsecret99" not in text, obj["kind"]


def test_a_stream_without_webrtc_gets_no_webrtc_settings(tmp_path: Path) -> None:
    objects, _ = render({"streams": [VALID], "webrtc": {"iceServers": [TURN]}})
    [deployment] = of_kind(objects, "Deployment")
    [stream] = load_pod_config(objects, deployment, tmp_path).streams
    assert (stream.playback, stream.whep_url, stream.ice_servers) == (["hls"], None, [])
    assert "WHEP_URL" not in env_of(deployment) and "ICE_SERVERS" not in env_of(deployment)


def test_webrtc_with_an_existing_secret_takes_its_whep_url_from_it() -> None:
    entry = {"name": "kept-elsewhere", "existingSecret": "urls", "playback": ["webrtc"]}
    objects, _ = render({"streams": [entry]})
    env = env_of(of_kind(objects, "Deployment")[0])
    assert env["WHEP_URL"]["valueFrom"]["secretKeyRef"] == {"name": "urls", "key": "WHEP_URL"}


def test_sharded_pods_load_the_webrtc_settings(tmp_path: Path) -> None:
    values = sharded_values(webrtc={"iceServers": [TURN]})
    values["streams"] = [
        {**WEBRTC_STREAM, "name": "webrtc-one"},
        {"name": "kept-elsewhere", "existingSecret": "urls", "playback": ["webrtc"]},
    ]
    objects, _ = render(values)
    env = {var["name"]: var for var in container(statefulset(objects))["env"] if "valueFrom" in var}
    assert env["STREAM_1_WHEP_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "urls",
        "key": "WHEP_URL",
    }
    del values["streams"][1]  # no such Secret here to read
    objects, _ = render(values)
    config, _ = load_shard_config(objects, 0, tmp_path)
    [stream] = config.streams
    assert stream.whep_url == WHEP_URL
    assert (stream.playback, stream.freeze_ms, stream.ice_servers) == (
        ["hls", "webrtc"],
        750,
        [TURN],
    )


@pytest.mark.parametrize(
    "values",
    [
        {"streams": [{**VALID, "playback": ["dash"]}]},
        {"streams": [{**VALID, "playback": []}]},
        {"streams": [{**VALID, "freeze_ms": 10}]},
        {"streams": [{**VALID, "whep_url": "ftp://x.example.test/w"}]},
        {"streams": [VALID], "webrtc": {"iceServers": ["http://stun.example.test"]}},
    ],
    ids=["unknown-protocol", "no-protocol", "freeze-too-short", "whep-not-http", "ice-not-stun"],
)
def test_schema_rejects_bad_webrtc_settings(values: dict[str, Any]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
