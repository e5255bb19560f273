"""`surveil snapshot`: one frame of a configured camera with zones, lines and a labelled grid."""

from __future__ import annotations

import cv2
import yaml

from surveil.analysis.render import LINE_COLOUR, ZONE_COLOUR
from surveil.cli import main
from tests.support.pixels import outline_hits
from tests.support.polling import free_port
from tests.support.scene import HEIGHT, WIDTH, make_scene_clip

CENTRE = [[0.3, 0.3], [0.7, 0.3], [0.7, 0.7], [0.3, 0.7]]
PASSWORD = "s3cret-camera-pass"


def write_config(path, **camera) -> str:
    config = {
        "cameras": [
            {
                "name": "cam",
                "zones": [{"name": "centre", "polygon": CENTRE}],
                "lines": [{"name": "low", "a": [0.1, 0.9], "b": [0.9, 0.9]}],
                **camera,
            }
        ],
        "mqtt": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_snapshot_of_a_file_camera_draws_zones_lines_and_grid(tmp_path, capsys):
    clip = make_scene_clip(tmp_path / "scene.mp4")
    config = write_config(tmp_path / "site.yaml", url=str(clip.path))
    out = tmp_path / "cam.png"
    assert main(["snapshot", "-c", config, "cam", "-o", str(out)]) == 0
    assert "cam, 320x240, 1 zone(s), 1 line(s)" in capsys.readouterr().out
    image = cv2.imread(str(out))
    assert image.shape == (HEIGHT, WIDTH, 3)
    assert outline_hits(image, CENTRE, [ZONE_COLOUR]) >= 0.9
    assert outline_hits(image, [[0.1, 0.9], [0.9, 0.9]], [LINE_COLOUR]) >= 0.9
    # the grid: a faint line at x = 0.1 (the scene's background is black there), none between lines
    assert 90 <= int(image[100, 32].mean()) <= 160
    assert int(image[100, 16].max()) < 40
    assert int(image[:16, 40:].max()) > 150, "labelled along the top"


def test_snapshot_errors_exit_2_without_leaking_the_password(tmp_path, capsys):
    url = f"rtsp://viewer:{PASSWORD}@127.0.0.1:{free_port()}/stream1"
    config = write_config(tmp_path / "site.yaml", url=url, open_timeout_s=1)
    assert main(["snapshot", "-c", config, "cam", "-o", str(tmp_path / "x.jpg")]) == 2
    err = capsys.readouterr().err
    assert "camera cam: cannot open" in err and "open_timeout_s" in err and PASSWORD not in err
    assert not (tmp_path / "x.jpg").exists()
    assert main(["snapshot", "-c", config, "nope", "-o", str(tmp_path / "x.jpg")]) == 2
    assert "no camera named 'nope'" in capsys.readouterr().err
    missing = write_config(tmp_path / "missing.yaml", url=str(tmp_path / "missing.mp4"))
    assert main(["snapshot", "-c", missing, "cam", "-o", str(tmp_path / "x.jpg")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_snapshot_of_a_real_rtsp_stream(rtsp_server, tmp_path, capsys):
    config = write_config(tmp_path / "site.yaml", url=rtsp_server.url)
    out = tmp_path / "rtsp.jpg"
    assert main(["snapshot", "-c", config, "cam", "-o", str(out)]) == 0
    image = cv2.imread(str(out))
    assert image is not None and outline_hits(image, CENTRE, [ZONE_COLOUR], tolerance=80) >= 0.8
