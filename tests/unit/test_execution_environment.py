# -*- coding: utf-8 -*-
# Copyright: kvmfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment (execution-environment.yml) as ansible-builder makes it.

`ansible-builder create` writes the build context; no image is built (no podman, no registry).
The stages that decide what the image holds are then replayed here with the context's own
files: the galaxy stage's collection install, the builder stage's introspection (the
combined bindep.txt and requirements.txt the builder's `assemble` reads), and bindep's own
parser on those files for the RPM base image, with the profiles `assemble` and
`install-from-bindep` pass (`compile` in the builder stage, the default one for the image).
"""
from __future__ import absolute_import, division, print_function

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEFINITION = REPO / "execution-environment.yml"
# bindep's platform profiles on the base image (quay.io/centos/centos:stream10)
CENTOS_STREAM_10 = ["platform:rpm", "platform:centos", "platform:redhat", "platform:centos-10", "platform:python3"]
BUILD_DEPENDENCIES = {"gcc", "pkgconf-pkg-config", "libvirt-devel", "python3-devel"}   # libvirt-python's sdist
RUNTIME = {"libvirt-libs", "openssh-clients"}       # the built libvirt module's library; SSH to the hypervisors
EE_PYTHON = {"lxml", "netaddr", "libvirt-python"}

# The EE is built from a checkout (galaxy.yml, tools/): an installed collection has neither.
pytestmark = pytest.mark.skipif(not (DEFINITION.is_file() and (REPO / "galaxy.yml").is_file()),
                                reason="not a checkout: no execution-environment.yml or galaxy.yml")


def clean_env(**settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_NOCOLOR="1", **settings)
    return env


def run(cmd, **kwargs):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, check=False, **kwargs)
    assert proc.returncode == 0, "%s\n%s%s" % (cmd, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    """The build context of a copy of the definition and the files it names, after the documented
    `ansible-galaxy collection build --output-path .build/ee` (in the copy: unit runs may be parallel)."""
    missing = [name for name in ("ansible_builder", "bindep") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.fail("%s missing: install requirements.txt (tools/bootstrap.sh)" % ", ".join(missing))
    tmp = tmp_path_factory.mktemp("ee")
    definition = yaml.safe_load(DEFINITION.read_text())
    work = tmp / "checkout"
    work.mkdir()
    shutil.copy(DEFINITION, work / DEFINITION.name)
    for key in ("python", "system"):
        (work / definition["dependencies"][key]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / definition["dependencies"][key], work / definition["dependencies"][key])
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    env = clean_env(ANSIBLE_CONFIG=str(tmp / "ansible.cfg"))
    run([BIN / "ansible-galaxy", "collection", "build", REPO, "--output-path", work / ".build" / "ee"], env=env)
    ctx = tmp / "context"
    run([sys.executable, "-m", "ansible_builder", "create", "-f", work / DEFINITION.name, "-c", ctx,
         "--output-filename", "Containerfile"], env=env)
    return {"dir": ctx, "build": ctx / "_build", "containerfile": (ctx / "Containerfile").read_text(),
            "definition": definition, "env": env, "tmp": tmp}


def stage(containerfile, name):
    """The lines of one stage (FROM ... AS name) of the Containerfile."""
    found = re.search(r"^FROM \S+ AS %s\n(.*?)(?=^FROM |\Z)" % name, containerfile, re.M | re.S)
    assert found, "no stage %s in\n%s" % (name, containerfile)
    return found.group(1)


@pytest.fixture(scope="module")
def galaxy_stage(context):
    """The galaxy stage replayed: its COPY/RUN of the collection tarball, then its collection install."""
    galaxy = stage(context["containerfile"], "galaxy")
    assert "COPY _build /build\nWORKDIR /build" in galaxy
    # the tarball's versioned name becomes the one requirements.yml installs
    assert "RUN mv /build/collections/kvmfleet-iaas-*.tar.gz /build/collections/kvmfleet-iaas.tar.gz" in galaxy
    assert re.search(r"^RUN .*ansible-galaxy collection install .*-r requirements.yml", galaxy, re.M), galaxy
    build = context["tmp"] / "build"
    shutil.copytree(context["build"], build)
    tarballs = list((build / "collections").glob("kvmfleet-iaas-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    tarballs[0].rename(build / "collections" / "kvmfleet-iaas.tar.gz")
    target = context["tmp"] / "usr-share-ansible-collections"
    # the image's collections path is the only one (a copy installed for this user must not count)
    run([BIN / "ansible-galaxy", "collection", "install", "-r", "requirements.yml", "-p", target],
        cwd=build, env=dict(context["env"], ANSIBLE_COLLECTIONS_PATH=str(target)))
    return target


@pytest.fixture(scope="module")
def introspected(context, galaxy_stage):
    """The builder stage's introspection (its RUN line, with the context's own script) on the installed collection."""
    builder = stage(context["containerfile"], "builder")
    line = re.search(r"^RUN \$PYCMD /output/scripts/introspect.py introspect (.*)$", builder, re.M)
    assert line, builder
    assert "RUN /output/scripts/assemble" in builder.split(line.group(0), 1)[1]
    out = context["tmp"] / "src"
    args = line.group(1).replace("/tmp/src/", "%s/" % out).split()
    run([sys.executable, context["build"] / "scripts" / "introspect.py", "introspect", galaxy_stage] + args,
        cwd=context["build"])
    return {"bindep": (out / "bindep.txt").read_text(), "pip": (out / "requirements.txt").read_text()}


def bindep_packages(text, profiles):
    """The packages bindep selects from ``text`` with ``profiles`` on the base image's platform."""
    from bindep.depends import Depends
    depends = Depends(text)
    return {rule[0] for rule in depends.active_rules(profiles + CENTOS_STREAM_10)}


def pip_names(text):
    from packaging.requirements import Requirement
    return {Requirement(re.sub(r"\s+#.*", "", line)).name.lower() for line in text.splitlines()
            if line.strip() and not line.startswith("#")}


def test_the_definition_is_schema_3_on_an_rpm_base_with_ansible_core_and_runner(context):
    definition = context["definition"]
    assert definition["version"] == 3
    base = stage(context["containerfile"], "base")
    assert 'ARG EE_BASE_IMAGE="%s"' % definition["images"]["base_image"]["name"] in context["containerfile"]
    assert "RUN $PYCMD -m pip install --no-cache-dir $ANSIBLE_INSTALL_REFS" in base
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="(.*)"$', context["containerfile"], re.M).group(1)
    assert refs.startswith("ansible-core") and "ansible-runner" in refs, refs


def test_the_builder_stage_installs_libvirt_pythons_build_dependencies(context, introspected):
    builder = stage(context["containerfile"], "builder")
    assert "ENV PKGMGR_OPTS=--enablerepo=crb" in builder          # libvirt-devel is in CRB
    # assemble: `bindep -b compile` -> dnf install, before it builds the wheels of requirements.txt
    compile_packages = bindep_packages(introspected["bindep"], ["compile"])
    assert BUILD_DEPENDENCIES <= compile_packages, compile_packages
    assert "libvirt-python" in pip_names(introspected["pip"])


def test_the_image_gets_the_runtime_packages_and_not_the_build_dependencies(context, introspected):
    final = stage(context["containerfile"], "final")
    assert "COPY --from=builder /output/ /output/" in final and "RUN /output/scripts/install-from-bindep" in final
    # assemble: plain `bindep -l newline` (the default profile) -> /output/bindep/run.txt, the image's packages
    image_packages = bindep_packages(introspected["bindep"], ["default"])
    assert RUNTIME <= image_packages and not image_packages & BUILD_DEPENDENCIES, image_packages
    assert not {p for p in image_packages if not p.islower() or p in ("python3-dev", "libvirt-dev")}, image_packages


def test_the_python_requirements_are_what_the_plugins_need_and_no_test_tools(introspected):
    names = pip_names(introspected["pip"])
    assert EE_PYTHON <= names, names
    assert not names & {"pytest", "molecule", "ansible-builder", "bindep", "ansible-core"}, names
    # read once: the collection's own declaration (the same files) is excluded by the definition
    assert "# from collection kvmfleet.iaas" not in introspected["pip"] + introspected["bindep"]


def test_the_collection_from_its_tarball_is_installed_with_its_ee_metadata(galaxy_stage):
    root = galaxy_stage / "ansible_collections" / "kvmfleet" / "iaas"
    manifest = json.loads((root / "MANIFEST.json").read_text())["collection_info"]
    assert (manifest["namespace"], manifest["name"]) == ("kvmfleet", "iaas")
    assert (root / "plugins" / "filter" / "domain_policy.py").is_file()
    for shipped in ("meta/execution-environment.yml", "meta/ee-requirements.txt", "bindep.txt"):
        assert (root / shipped).is_file(), shipped


def test_an_ee_built_elsewhere_gets_the_same_from_the_collections_metadata(context, galaxy_stage):
    """Another EE definition that only lists kvmfleet.iaas: introspection of the installed collection."""
    out = context["tmp"] / "elsewhere"
    run([sys.executable, context["build"] / "scripts" / "introspect.py", "introspect", galaxy_stage,
         "--write-bindep", out / "bindep.txt", "--write-pip", out / "requirements.txt"])
    pip = (out / "requirements.txt").read_text()
    bindep_text = (out / "bindep.txt").read_text()
    assert "# from collection kvmfleet.iaas" in pip
    assert EE_PYTHON <= pip_names(pip)
    assert BUILD_DEPENDENCIES <= bindep_packages(bindep_text, ["compile"])
    assert RUNTIME <= bindep_packages(bindep_text, ["default"])


def test_bootstrap_installs_the_debian_lines_only():
    """tools/bootstrap.sh picks its Debian packages from bindep.txt itself (no bindep yet): the
    platform:dpkg lines, whatever their profile; never an RPM name."""
    line = next(text for text in (REPO / "tools" / "bootstrap.sh").read_text().splitlines() if text.startswith("wanted="))
    proc = run(["bash", "-c", 'set -euo pipefail; ROOT="$1"; %s; echo $wanted' % line, "bootstrap", REPO])
    wanted = set(proc.stdout.split())
    from bindep.depends import Depends
    depends = Depends((REPO / "bindep.txt").read_text())
    debian = {rule[0] for rule in depends.active_rules(["platform:dpkg", "platform:debian", "controller", "lab", "test"])}
    assert wanted == debian, (wanted, debian)
    assert {"libvirt-dev", "python3-dev", "pkg-config", "gcc"} <= wanted
    rpm_only = {rule[0] for rule in depends.active_rules(CENTOS_STREAM_10 + ["compile"])} - debian
    assert rpm_only and not wanted & rpm_only, wanted & rpm_only
