"""Issue 7 class 11: TLS is configurable and diagnosable.

Certificates are made in the test with the ``openssl`` command line (a CA, a broker certificate
for ``localhost``, a client certificate, and a second CA that signed nothing); a real mosquitto
serves two TLS listeners (one requiring a client certificate) with password authentication.
Every case runs the real MqttPublisher and checks whether an alert arrives, and what it logged.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from surveil.config import MqttConfig
from surveil.service.pipeline import Pipeline, PipelineError
from surveil.sinks.mqtt.publisher import MqttPublisher, MqttSetupError
from surveil.sinks.spool import AlertSpool
from tests.support.alerts import make_alert
from tests.support.mqtt_broker import MosquittoBroker, find_mosquitto
from tests.support.polling import free_port, wait_until

pytestmark = pytest.mark.slow  # a real broker / a running daemon in every test

USER, PASSWORD = "alice", "s3cret-pass"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.crt",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )


def make_cert(folder: Path, name: str, ca: str, extensions: str) -> None:
    openssl(
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text(extensions)
    openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.crt",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.crt",
        cwd=folder,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("pki")
    make_ca(folder, "ca")
    make_ca(folder, "other-ca")
    make_cert(folder, "broker", "ca", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    make_cert(folder, "client", "ca", "extendedKeyUsage=clientAuth\n")
    return folder


class TlsBroker:
    def __init__(self, broker: MosquittoBroker, tls_port: int, mtls_port: int) -> None:
        self.broker, self.tls_port, self.mtls_port = broker, tls_port, mtls_port


@pytest.fixture(scope="module")
def tls_broker(pki: Path, tmp_path_factory: pytest.TempPathFactory):
    executable = find_mosquitto()
    if executable is None:
        pytest.skip("mosquitto is not installed")
    broker = MosquittoBroker(executable, tmp_path_factory.mktemp("mosquitto-tls"), users={USER: PASSWORD})
    tls_port, mtls_port = free_port(), free_port()
    files = f"cafile {pki}/ca.crt\ncertfile {pki}/broker.crt\nkeyfile {pki}/broker.key\n"
    with broker.conf_path.open("a") as conf:
        conf.write(f"listener {tls_port} 127.0.0.1\n{files}")
        conf.write(f"listener {mtls_port} 127.0.0.1\n{files}require_certificate true\n")
    broker.start()
    try:
        yield TlsBroker(broker, tls_port, mtls_port)
    finally:
        broker.kill()


# name, host, listener, CA file, client certificate, password, tls_insecure, connects, what the log must say
CASES = [
    ("good-ca", "localhost", "tls", "ca", False, PASSWORD, False, True, None),
    ("wrong-ca", "localhost", "tls", "other-ca", False, PASSWORD, False, False, "TLS certificate verification failed"),
    (
        "hostname-mismatch",
        "127.0.0.1",
        "tls",
        "ca",
        False,
        PASSWORD,
        False,
        False,
        "TLS certificate verification failed: IP address mismatch",
    ),
    ("mismatch-accepted-when-insecure", "127.0.0.1", "tls", "ca", False, PASSWORD, True, True, None),
    ("client-cert-required-and-given", "localhost", "mtls", "ca", True, PASSWORD, False, True, None),
    (
        "client-cert-required-not-given",
        "localhost",
        "mtls",
        "ca",
        False,
        PASSWORD,
        False,
        False,
        "certificate required",
    ),
    (
        "bad-password",
        "localhost",
        "tls",
        "ca",
        False,
        "wrong-password",
        False,
        False,
        "the broker refused the connection: Not authorized",
    ),
]


@pytest.mark.parametrize(
    ("name", "host", "listener", "ca", "client_cert", "password", "insecure", "connects", "logged"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_tls_connects_or_says_why(
    tls_broker: TlsBroker,
    pki: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    name: str,
    host: str,
    listener: str,
    ca: str,
    client_cert: bool,
    password: str,
    insecure: bool,
    connects: bool,
    logged: str | None,
) -> None:
    caplog.set_level(logging.INFO, logger="surveil.sinks.mqtt.publisher")
    config = MqttConfig(
        host=host,
        port=tls_broker.tls_port if listener == "tls" else tls_broker.mtls_port,
        instance="tls",
        topic_prefix=f"tls-{uuid.uuid4().hex[:6]}",
        username=USER,
        password=password,
        keepalive_s=5,
        ca_file=str(pki / f"{ca}.crt"),
        tls_insecure=insecure,
        **({"cert_file": str(pki / "client.crt"), "key_file": str(pki / "client.key")} if client_cert else {}),
    )
    assert config.uses_tls and not config.tls, "ca_file alone turns TLS on"
    spool = AlertSpool(tmp_path / "spool.sqlite3")
    publisher = MqttPublisher(config, spool, reconnect_min_s=0.1, reconnect_max_s=0.3)
    publisher.start()
    try:
        publisher.publish_alert(make_alert(1))
        if connects:
            assert wait_until(lambda: publisher.connected and len(spool) == 0, 10), caplog.text
        else:
            assert wait_until(
                lambda: any(logged in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING), 10
            ), caplog.text
            assert not publisher.connected and len(spool) == 1
    finally:
        publisher.stop(timeout=2.0)
        spool.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    if connects:
        assert warnings == []
    else:
        assert len([w for w in warnings if "unavailable" in w]) == 1, "an outage is logged once, not once per retry"


@pytest.mark.parametrize(("field", "value"), [("ca_file", "missing-ca.pem"), ("cert_file", "missing-cert.pem")])
def test_unreadable_tls_file_is_a_startup_error_naming_it(tmp_path: Path, field: str, value: str) -> None:
    options = {field: str(tmp_path / value)}
    if field == "cert_file":
        options["key_file"] = str(tmp_path / "missing-key.pem")
    config = MqttConfig(**options)
    with pytest.raises(MqttSetupError, match=value):
        MqttPublisher(config, AlertSpool(tmp_path / "spool.sqlite3"))
    assert issubclass(MqttSetupError, ValueError) and PipelineError is not None and Pipeline is not None


def test_cert_without_key_is_rejected_by_the_config() -> None:
    with pytest.raises(ValueError, match="cert_file and key_file"):
        MqttConfig(cert_file="client.crt")
