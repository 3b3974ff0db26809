"""The decoded-image cache: files on disk read a few rows at a time, built in chunks by worker processes, a
killed build resumed to the same bytes, a truncated file rebuilt; every unreadable image reported
at once, a JPEG cut short among them (or kept, with a notice, where a competition says so), and
nothing the decoders print reaching the terminal; grayscale, 16-bit, CMYK, alpha and EXIF-rotated images decoded to upright 8-bit RGB."""
import pickle

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline import PipelineError
from pipeline.vision import images
from pipeline.vision.decode import read_rgb
from pipeline.vision.images import ImageCache

from conftest import write_image


def some_images(folder, n=22):
    paths = [folder / f"{i:03d}.png" for i in range(n)]
    for i, p in enumerate(paths):
        write_image(p, seed=i, size=20 + i % 5)  # sizes differ: every image is resized
    return paths


def kill_decoding_at_chunk(monkeypatch, n: int):
    """Decoding stops as a kill would at its `n`th chunk; returns the real decode_chunk."""
    real, calls = images.decode_chunk, []

    def killed(chunk, *args):
        calls.append(len(chunk))
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(chunk, *args)
    monkeypatch.setattr(images, "decode_chunk", killed)
    return real


@pytest.mark.quick
def test_a_killed_build_resumes_where_it_stopped_to_the_same_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "CHUNK", 4)
    paths = some_images(tmp_path / "img")
    straight = ImageCache(paths, tmp_path / "straight", key="k", workers=1)
    straight.prepare([16, 24])

    real = kill_decoding_at_chunk(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        ImageCache(paths, tmp_path / "killed", key="k", workers=1).prepare([16, 24])
    assert not list((tmp_path / "killed").glob("k-*px.npy"))  # nothing finished is claimed

    calls = []
    monkeypatch.setattr(images, "decode_chunk", lambda chunk, *args: calls.append(len(chunk)) or real(chunk, *args))
    resumed = ImageCache(paths, tmp_path / "killed", key="k", workers=1)
    resumed.prepare([16, 24])
    assert sum(calls) == 22 - 3 * 4  # only what the three recorded chunks had not written
    for s in (16, 24):
        assert isinstance(resumed[s], images.Rows) and resumed[s].shape == (22, s, s, 3)
        assert (tmp_path / "killed" / f"k-{s}px.npy").read_bytes() == (tmp_path / "straight" / f"k-{s}px.npy").read_bytes()
    # no partial file left; the lock stays (empty: the OS holds locks, not the file)
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == ["k-16px.npy", "k-24px.npy", "k.lock"]


@pytest.mark.quick
def test_worker_processes_write_what_one_process_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "CHUNK", 4)
    paths = some_images(tmp_path / "img")
    one = ImageCache(paths, tmp_path / "one", key="k", workers=1)[20]
    two = ImageCache(paths, tmp_path / "two", key="k", workers=2)[20]
    assert np.array_equal(one, two)
    memory = ImageCache(paths)[20]  # no cache folder: in memory, the same pixels
    assert isinstance(memory, np.ndarray) and np.array_equal(memory, one)
    rows = np.array([5, 0, 21, 5, 9, 10, 11, 3])  # what datasets and prediction index with: one image, slices, positions
    assert np.array_equal(one[3], memory[3]) and np.array_equal(one[-1], memory[-1])
    assert np.array_equal(one[4:9], memory[4:9]) and np.array_equal(one[20:99], memory[20:])
    assert np.array_equal(one[rows], memory[rows]) and np.array_equal(one[::7], memory[::7])
    assert np.array_equal(pickle.loads(pickle.dumps(one))[rows], memory[rows])  # as a spawned loader worker gets it


@pytest.mark.quick
def test_a_truncated_cache_file_is_rebuilt_not_trusted(tmp_path, capsys):
    paths = some_images(tmp_path / "img", n=5)
    want = np.array(ImageCache(paths, tmp_path / "cache", key="k")[24])
    f = tmp_path / "cache" / "k-24px.npy"
    f.write_bytes(f.read_bytes()[:-100])  # a copy cut off
    capsys.readouterr()
    assert np.array_equal(ImageCache(paths, tmp_path / "cache", key="k")[24], want)
    assert f"{f}: cut off or not this data's; decoding the images again" in capsys.readouterr().err
    assert f.stat().st_size == 128 + 5 * 24 * 24 * 3  # header + every image, whole again


@pytest.mark.quick
def test_every_unreadable_image_is_reported_at_once(tmp_path):
    paths = some_images(tmp_path / "img", n=8)
    for i in (1, 4, 6):
        paths[i].write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "img" / "empty.png").write_bytes(b"")
    paths.append(tmp_path / "img" / "empty.png")
    with pytest.raises(PipelineError) as e:
        ImageCache(paths, tmp_path / "cache", key="k")[16]
    msg = str(e.value)
    assert msg.startswith("4 of 9 images are not readable") and "001.png" in msg and "\n" not in msg
    listed = [line.split("\t")[0] for line in (tmp_path / "cache" / "unreadable-k.txt").read_text().splitlines()]
    assert listed == [str(paths[i]) for i in (1, 4, 6, 8)] and str(tmp_path / "cache" / "unreadable-k.txt") in msg
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k.lock", "unreadable-k.txt"]  # no partial


@pytest.mark.quick
def test_test_images_that_cannot_be_read_are_placeholder_rows_listed_and_said_once(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "CHUNK", 4)
    monkeypatch.chdir(tmp_path)
    paths = some_images(tmp_path / "img", n=10)
    for i in (2, 7):
        paths[i].write_bytes(b"\x89PNG\r\n\x1a\n not really")
    said = []

    def test_cache(folder, **kw):
        return ImageCache(paths, folder, key="k", workers=1, on_unreadable=lambda *a: said.append(a), **kw)
    listing = tmp_path / "cache" / "unreadable-k.txt"
    for folder in (tmp_path / "cache", None):  # on disk, and in memory
        said.clear()
        cache = test_cache(folder)
        got = np.asarray(cache[16])
        cache.prepare([24])
        assert [at for at, _, _ in cache.unreadable(16)] == [2, 7] == [at for at, _, _ in cache.unreadable(24)]
        assert not got[[2, 7]].any() and got[[0, 1, 3, 9]].any(axis=(1, 2, 3)).all()  # zeros: no image
        assert len(said) == 1 and [p for _, p, _ in said[0][0]] == [str(paths[2]), str(paths[7])]  # once, two sizes
        assert said[0][1] == (folder or tmp_path) / "unreadable-k.txt"  # (in memory: the working folder)
    assert [line.split("\t")[0] for line in listing.read_text().splitlines()] == [str(paths[2]), str(paths[7])]
    # opened from disk by another run: the same placeholders, said again there, once
    said.clear()
    again = test_cache(tmp_path / "cache")
    assert [at for at, _, _ in again.unreadable(16)] == [2, 7] and len(said) == 1
    # a build killed half way (the second chunk holds image 7) resumes knowing image 2 was unreadable
    real = kill_decoding_at_chunk(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        test_cache(tmp_path / "killed").prepare([16])
    monkeypatch.setattr(images, "decode_chunk", real)
    assert [at for at, _, _ in test_cache(tmp_path / "killed").unreadable(16)] == [2, 7]
    # the same files as training images: refused, from the decoded file too
    with pytest.raises(PipelineError, match=r"^2 of 10 images are not readable .*: .*002.png, .*007.png; all of them"):
        ImageCache(paths, tmp_path / "cache", key="k", workers=1)[16]


def jpeg_bytes(size: int = 96) -> bytes:
    """A real JPEG: a smooth colour image encoded by OpenCV."""
    noise = np.random.default_rng(0).integers(0, 256, (size, size, 3), np.uint8)
    return cv2.imencode(".jpg", cv2.GaussianBlur(noise, (9, 9), 3))[1].tobytes()


@pytest.mark.quick
def test_a_jpeg_cut_short_is_unreadable_and_bytes_after_a_whole_ones_end_are_fine(tmp_path):
    paths = some_images(tmp_path / "img", n=4)
    whole = jpeg_bytes()
    for name, data in {"cut.jpg": whole[:int(len(whole) * 0.6)],  # libjpeg would fill the rest with grey
                       "padded.jpg": whole + bytes(64),  # zeros after the end marker, as some writers pad
                       "trailer.jpg": whole + b"SEFH\x00\x01\xff\xd8 a camera's own data"}.items():
        (tmp_path / "img" / name).write_bytes(data)
        paths.append(tmp_path / "img" / name)
    with pytest.raises(PipelineError) as e:
        ImageCache(paths, tmp_path / "cache", key="k", workers=1)[16]
    msg = str(e.value)
    assert msg.startswith(f"1 of 7 images are not readable (corrupt, cut short or not images): {paths[4]}; ")
    assert msg.endswith('set truncated_images = "keep" in the competition\'s competition.py') and "\n" not in msg
    assert (tmp_path / "cache" / "unreadable-k.txt").read_text() == f"{paths[4]}\ttruncated\n"
    want = cv2.imdecode(np.frombuffer(whole, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.array_equal(read_rgb(paths[5]), want) and np.array_equal(read_rgb(paths[6]), want)


@pytest.mark.quick
def test_a_competition_may_keep_jpegs_cut_short_and_is_told_which(tmp_path, capfd):
    whole = jpeg_bytes()
    full, cut = tmp_path / "full.jpg", tmp_path / "cut.jpg"
    full.write_bytes(whole)
    cut.write_bytes(whole[:int(len(whole) * 0.6)])
    kept = np.asarray(ImageCache([full, cut], tmp_path / "cache", key="k", workers=1, truncated="keep")[96])
    assert np.array_equal(kept[1][:24], kept[0][:24])  # what the file holds, as decoded whole
    assert (abs(kept[1][-8:].astype(int) - 128) <= 2).all()  # what it lacks, grey
    err = capfd.readouterr().err
    assert err.strip() == (f"kept 1 of 2 images that are JPEGs cut short, the missing part grey "
                           f'(truncated_images = "keep"): {cut}; all of them are listed in {tmp_path / "cache" / "truncated-k.txt"}')
    # going back to refusing them refuses them again: the kept pixels sit in a cache of their own
    with pytest.raises(PipelineError, match=f"1 of 2 images are not readable .*: {cut}; "):
        ImageCache([full, cut], tmp_path / "cache", key="k", workers=1)[96]
    with pytest.raises(PipelineError, match="truncated_images 'mend'; use one of refuse, keep"):
        ImageCache([full], truncated="mend")


def png_with_a_bad_crc(path):
    """A PNG that decodes, with a text chunk whose checksum is wrong: libpng warns about it."""
    png = cv2.imencode(".png", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    text = b"Comment\0hello"
    chunk = len(text).to_bytes(4, "big") + b"tEXt" + text + b"\0\0\0\0"
    path.write_bytes(png[:33] + chunk + png[33:])  # after the signature and IHDR


@pytest.mark.quick
def test_what_the_decoders_print_stays_off_the_terminal_and_the_error_names_the_files(tmp_path, capfd):
    paths = some_images(tmp_path / "img", n=3)
    png_with_a_bad_crc(tmp_path / "img" / "crc.png")
    whole_png = paths[0].read_bytes()
    (tmp_path / "img" / "cut.png").write_bytes(whole_png[:len(whole_png) // 2])
    whole = jpeg_bytes()
    (tmp_path / "img" / "cut.jpg").write_bytes(whole[:int(len(whole) * 0.6)])
    paths += [tmp_path / "img" / name for name in ("crc.png", "cut.png", "cut.jpg")]
    with pytest.raises(PipelineError) as e:
        ImageCache(paths, tmp_path / "cache", key="k", workers=1)[16]
    assert str(e.value).startswith(f"2 of 6 images are not readable (corrupt, cut short or not images): "
                                   f"{paths[4]}, {paths[5]}; ")
    reasons = dict(line.split("\t") for line in (tmp_path / "cache" / "unreadable-k.txt").read_text().splitlines())
    assert reasons[str(paths[5])] == "truncated"  # and the PNG's, what the decoder said, less OpenCV's log prefix
    assert reasons[str(paths[4])] not in ("", "truncated") and not reasons[str(paths[4])].startswith("[")
    kept = ImageCache(paths[:4] + paths[5:], tmp_path / "kept", key="k", workers=1, truncated="keep")[16]
    assert len(kept) == 5  # the cut JPEG decoded after all: libjpeg warns of corrupt data as it does
    out, err = capfd.readouterr()
    said = [line for line in (out + err).splitlines() if not line.startswith("kept 1 of 5 images that are JPEGs cut short")]
    assert len(said) < len((out + err).splitlines())  # the notice, and nothing the decoders said
    assert not any(text in line for line in said for text in ("libpng", "JPEG", "Premature end"))


@pytest.mark.quick
def test_odd_image_modes_decode_to_upright_8bit_rgb(tmp_path):
    deep = (np.arange(10 * 12 * 3).reshape(10, 12, 3) * 500).astype(np.uint16)  # 16-bit, BGR on disk
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    assert np.array_equal(read_rgb(tmp_path / "deep.png"), (deep >> 8).astype(np.uint8)[..., ::-1])

    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    cv2.imwrite(str(tmp_path / "gray.png"), gray)
    assert np.array_equal(read_rgb(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, axis=2))

    Image.new("CMYK", (8, 6), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")  # pure red in CMYK
    red = read_rgb(tmp_path / "cmyk.jpg")
    assert red.shape == (6, 8, 3) and (red[..., 0] > 240).all() and (red[..., 1:] < 15).all()

    Image.new("RGBA", (8, 6), (10, 200, 30, 0)).save(tmp_path / "alpha.png")  # alpha dropped, as PIL's convert("RGB")
    assert (read_rgb(tmp_path / "alpha.png") == [10, 200, 30]).all()

    upright = Image.new("RGB", (20, 10), (255, 255, 255))
    upright.paste((0, 0, 255), (0, 0, 4, 4))  # a blue corner, top left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    upright.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    shown = read_rgb(tmp_path / "rotated.jpg")
    assert shown.shape == (20, 10, 3)  # taller than wide, as a viewer shows it
    assert shown[1, -2, 2] > 200 and shown[1, -2, 0] < 60  # the blue corner is now top right


def ellipse_of(img: np.ndarray) -> tuple[int, int]:
    """Height and width of the bright shape in `img`."""
    rows, cols = np.flatnonzero(img[..., 0].max(1) > 127), np.flatnonzero(img[..., 0].max(0) > 127)
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def bars(img: np.ndarray) -> np.ndarray:
    return (img[..., 2] > 200) & (img[..., 0] < 50)  # blue, not white


@pytest.mark.quick
def test_each_resize_policy_gives_a_square_and_keeps_proportions_where_it_promises():
    wide = np.zeros((60, 120, 3), np.uint8)  # a landscape photo: a disc in the middle, bars at both ends
    cv2.circle(wide, (60, 30), 25, (255, 255, 255), -1)
    wide[:, :10] = wide[:, -10:] = (0, 0, 255)

    squash, crop, pad = (images.resize(wide, 48, policy) for policy in images.RESIZE)
    assert squash.shape == crop.shape == pad.shape == (48, 48, 3)
    h, w = ellipse_of(squash)
    assert h > 1.6 * w  # stretched tall: the disc is an ellipse
    h, w = ellipse_of(crop)
    assert abs(h - w) <= 1 and h > 0.75 * 48  # round, and filling the square's height
    assert not bars(crop).any()  # the bars at the ends are cut off
    h, w = ellipse_of(pad)
    assert abs(h - w) <= 1 and h < 0.5 * 48  # round, at half scale: the whole width fits
    assert pad[:12].max() == 0 and pad[-12:].max() == 0  # black above and below
    assert bars(pad)[12:36, 0].all() and bars(pad)[12:36, -1].all()  # both end bars are kept

    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))
    assert images.resize(tall, 48, "pad")[:, :12].max() == 0  # portrait: the bars go left and right
    square = np.full((30, 30, 3), 77, np.uint8)
    assert all((images.resize(square, 30, p) == square).all() for p in images.RESIZE)  # nothing to do


@pytest.mark.quick
def test_the_cache_keeps_one_file_per_policy(tmp_path):
    paths = [tmp_path / "wide.png"]
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :10] = 255  # white on the left quarter: gone when cropped
    cv2.imwrite(str(paths[0]), wide)
    squashed = ImageCache(paths, tmp_path / "cache", key="k", workers=1)[16]
    cropped = ImageCache(paths, tmp_path / "cache", key="k", workers=1, resize="crop")[16]
    assert np.asarray(squashed)[0, :, 0].max() == 255 and np.asarray(cropped)[0].max() == 0
    assert sorted(p.name for p in (tmp_path / "cache").glob("*.npy")) == ["k-16px-crop.npy", "k-16px.npy"]
    with pytest.raises(PipelineError, match="resize 'stretch'; use one of squash, crop, pad"):
        ImageCache(paths, resize="stretch")


@pytest.mark.quick
def test_random_resized_crops_frame_each_image_differently_at_the_phase_size():
    from pipeline.vision.transforms import train_augment
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    crops = train_augment(seed=3, symmetry="none", size=64, random_crop=0.5)
    out = [crops(image=img)["image"] for _ in range(8)]
    assert all(o.shape == (64, 64, 3) for o in out)
    assert len({o.tobytes() for o in out}) == 8
    again = train_augment(seed=3, symmetry="none", size=64, random_crop=0.5)
    assert all((again(image=img)["image"] == o).all() for o in out)  # seeded: a resumed epoch sees the same
