"""`cfld prepare photos` takes every name of every script: a person or photo name keeps its letters (NFC, so a name
macOS wrote decomposed is the same name), becomes a prepared name valid on Windows, macOS and Linux, and stays
distinct (names that differ only in case are refused, being one file on macOS and Windows); a name that cannot be
used, a link that leads nowhere and a hidden photo are reported, never skipped without a word."""

from __future__ import annotations

import csv
import json
import os
import random
import unicodedata
from pathlib import Path

import pytest
from PIL import Image

from cfld.data.photos.names import STEM_BYTES, cut, fold, portable_problem, prepared_name, safe_part
from cfld.data.photos.report import REPORT
from conftest import assert_fails, needs_mediapipe, run

DATA = Path(__file__).resolve().parent / "data"
PHOTOS = (DATA / "women1.jpg", DATA / "women2.jpg")  # two real 256x176 DeepFashion photos of two people


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


_made = [0]


def photo(path: Path) -> Path:
    """A real photo of one person at ``path``, with bytes no other photo of the test has (so it is no duplicate)."""
    _made[0] += 1
    picture = Image.open(PHOTOS[_made[0] % 2]).convert("RGB")
    if _made[0] % 4 >= 2:
        picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
    picture.putpixel((0, 0), (_made[0] % 256, _made[0] // 256, 7))
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path, format="PNG")
    return path


def prepare(capsys, root: Path, out: Path, *more) -> tuple[int, str, str]:
    return run(capsys, "prepare", "photos", "-i", root, "-o", out, "--test-fraction", "0", "--no-progress", *more)


def people_csv(out: Path) -> list[dict]:
    return list(csv.DictReader((out / "people.csv").open(encoding="utf-8")))


# -- the rule ---------------------------------------------------------------------------------------------------------


NAMES = ["李娜", "王伟", "محمد علي", "प्रिया", "김민준", "Ελένη", "Đặng Thị", "😀", "👩‍👩‍👧", "🇫🇷 flag",
         "anna b", "!!!", "CON", "aux.jpg", "NUL.txt", "a<b>c:d\"e/f\\g|h?i*j", "tab\there", "trailing. ", "José",
         nfd("José"), "ﬁne", "x" * 300, "ñ" * 200, "q\u0303" * 80, "木" * 90, "\u202eevil", "zero\u200bwidth", "_",
         "COM1", "LPT9.png", "　全角　"]


def test_prepared_names_are_portable_and_keep_their_letters():
    # ASCII names come out as they always did
    assert prepared_name("anna b", "0.jpg") == "anna-b_0.png"
    assert prepared_name("person 0", "2024/side.jpg") == "person-0_2024-side.png"
    assert prepared_name("!!!", "x.jpg") == "x_x.png"
    # every script keeps its letters, marks and digits; emoji are kept; NFD and NFC are one name
    assert prepared_name("李娜", "正面.jpg") == "李娜_正面.png" != prepared_name("王伟", "正面.jpg")
    assert prepared_name("प्रिया", "1.jpg") == "प्रिया_1.png"
    assert prepared_name("محمد علي", "1.jpg") == "محمد-علي_1.png"
    assert prepared_name(nfd("김민준"), "1.jpg") == prepared_name("김민준", "1.jpg") == "김민준_1.png"
    assert prepared_name(nfd("José"), "1.jpg") == "José_1.png"
    assert prepared_name("😀", "🙂.png") == "😀_🙂.png"
    assert safe_part("\u202eevil") == "evil" and safe_part("zero\u200bwidth") == "zero-width"  # no format controls
    for person in NAMES:
        for within in ("0.jpg", "aux.jpg", "CON.png", "sub dir/NUL .jpeg", "x" * 250 + ".jpg", "ü" * 120 + ".png"):
            name = prepared_name(person, within)
            assert portable_problem(name) is None, (person, within, name)
            assert name.count("_") == 1 and len(name.encode()) <= STEM_BYTES + 4
            assert "_2_" not in name


def test_portable_problem_names_what_a_file_system_refuses():
    assert portable_problem("alice_front.png") is None
    assert "reserves" in portable_problem("CON")
    assert "reserves" in portable_problem("aux.jpg") and "reserves" in portable_problem("com1.tar.gz")
    assert "reserves" in portable_problem("NUL .png")
    assert "Windows refuses" in portable_problem("a:b.png") and "Windows refuses" in portable_problem("a\x01.png")
    assert "ends in a dot" in portable_problem("alice.") and "ends in a dot" in portable_problem("alice ")
    assert "255" in portable_problem("木" * 90)
    assert "NFC" in portable_problem(nfd("José.png"))
    assert "not UTF-8" in portable_problem("caf\udce9.png")


def test_long_names_are_cut_on_a_character_boundary_and_stay_distinct():
    rng = random.Random(0)
    letters = ["a", "ñ", "木", "😀", "q\u0303", "क्ष", "👍🏽", "🇫🇷", "👩‍👧"]
    parts = {"".join(rng.choice(letters) for _ in range(rng.randint(20, 120))) for _ in range(2000)}
    cuts = {}
    for part in parts:
        short = cut(part, 60)
        assert len(short.encode()) <= 60 and cuts.setdefault(short, part) == part  # two parts, two cuts
        kept = short.rsplit("-", 1)[0] if len(part.encode()) > 60 else short
        assert part.startswith(kept)
        rest = part[len(kept):]
        if rest:  # never between a letter and its marks, a skin tone, a joiner or the halves of a flag
            assert unicodedata.category(rest[0])[0] != "M" and rest[0] not in "\u200d\U0001f3fd"
            assert not kept.endswith("\u200d") and kept.count("🇫🇷") == kept.count("\U0001f1eb")
    long_person = prepared_name("x" * 200, "y.jpg")
    assert long_person.startswith("x" * 40) and long_person.endswith("_y.png")
    assert prepared_name("x" * 200, "1.jpg") != prepared_name("x" * 199 + "z", "1.jpg")


def test_fold_is_what_case_blind_file_systems_compare():
    assert fold("Anna_0.png") == fold("anna_0.png") and fold("ÉLODIE") == fold("élodie") == fold(nfd("élodie"))
    assert fold("ς") == fold("σ") == fold("Σ")
    assert fold("Strauß") != fold("STRAUSS")  # NTFS and APFS keep these apart


# -- through the command line -----------------------------------------------------------------------------------------


def test_people_of_every_script_are_prepared(tmp_path, capsys):
    """People in many scripts, written as macOS writes them (NFD) or not, emoji, spaces, punctuation only, Windows
    device names, very long names: all prepared under distinct portable names, each person in NFC; a rerun frames
    nothing again."""
    needs_mediapipe()
    root = tmp_path / "catalogue"
    people = {"李娜": "李娜", "王伟": "王伟", "محمد علي": "محمد-علي", "प्रिया": "प्रिया", nfd("김민준"): "김민준",
              nfd("José"): "José", "😀": "😀", "anna b": "anna-b", "!!!": "x", "CON": "CON", "..carol": "carol",
              "ñ" * 120: None}
    for person in people:
        photo(root / person / "aux.jpg")
        photo(root / person / f"shot {person[:50]} {'é' * 60}.png")
    out = tmp_path / "out"
    code, stdout, err = prepare(capsys, root, out)
    assert code == 0, err
    assert "24 of 24 photos prepared" in stdout and "train: 12 people" in stdout
    rows = people_csv(out)
    assert {row["person"] for row in rows} == {unicodedata.normalize("NFC", person) for person in people}
    names = [row["name"] for row in rows]
    assert len(set(map(fold, names))) == 24
    for row in rows:
        assert portable_problem(row["name"]) is None and len(row["name"].encode()) <= STEM_BYTES + 4
        assert (out / "train_256x176" / row["name"]).is_file() and (root / row["source"]).is_file()
        expected = people[next(p for p in people if unicodedata.normalize("NFC", p) == row["person"])]
        if expected:
            assert row["name"].startswith(f"{expected}_"), row
    assert "李娜_aux.png" in names and "CON_aux.png" in names and "x_aux.png" in names
    assert sorted((out / "train.lst").read_text(encoding="utf-8").split()) == sorted(names)
    code, stdout, err = prepare(capsys, root, out)
    assert code == 0, err
    assert "all 24 photo(s) were framed by earlier runs" in stdout and "0 dataset file(s) written" in stdout


def test_names_of_one_file_where_case_is_ignored_are_refused(tmp_path, capsys):
    root = tmp_path / "catalogue"
    photo(root / "Anna" / "0.jpg")
    photo(root / "anna" / "0.jpg")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out")],
                 "Anna/0.jpg and anna/0.jpg would be prepared as Anna_0.png and anna_0.png",
                 "one file on macOS and Windows; rename one of them")
    root = tmp_path / "one person"
    photo(root / "Élodie" / "Front.jpg")
    photo(root / "Élodie" / "front.png")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out")],
                 "Élodie/Front.jpg and Élodie/front.png would be prepared as Élodie_Front.png and Élodie_front.png")
    assert not (tmp_path / "out").exists()


def test_a_name_in_two_unicode_forms_is_one_person(tmp_path, capsys):
    """Two folders of one name, composed (NFC) and decomposed (NFD, as macOS writes it), are one person; their
    photos of one name are refused in one sentence that says why they look alike; in a CSV too."""
    needs_mediapipe()
    root = tmp_path / "catalogue"
    photo(root / "José" / "0.jpg")
    photo(root / nfd("José") / "1.jpg")
    photo(root / "bob" / "0.jpg")
    photo(root / "bob" / "1.jpg")
    code, stdout, err = prepare(capsys, root, tmp_path / "out")
    assert code == 0, err
    assert "train: 2 people, 4 photos" in stdout
    assert "2 person folder(s) name one person in two Unicode forms" in stdout
    assert {row["person"] for row in people_csv(tmp_path / "out")} == {"José", "bob"}
    photo(root / nfd("José") / "0.jpg")
    assert_fails(capsys, ["prepare", "photos", "-i", str(root), "-o", str(tmp_path / "out2")],
                 "(one name in two Unicode forms, composed and decomposed) would both be prepared as José_0.png")
    rows = ["photo,person", "José/0.jpg,José", f"{nfd('José')}/1.jpg,{nfd('José')}", "bob/0.jpg,bob", "bob/1.jpg,bob"]
    (root / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, stdout, err = run(capsys, "prepare", "photos", "--people", root / "people.csv", "-o", tmp_path / "csv",
                            "--test-fraction", "0", "--no-progress")
    assert code == 0, err
    assert "train: 2 people, 4 photos" in stdout


def test_a_csv_finds_its_photos_written_in_the_other_unicode_form(tmp_path, capsys):
    """A CSV typed in NFC for folders and files macOS wrote in NFD (and copied to a Linux disk as they were): the
    photos are found, not reported missing."""
    needs_mediapipe()
    root = tmp_path / "catalogue"
    for name in ("Zoë", "Renée"):
        photo(root / nfd(name) / nfd("é0.jpg"))
        photo(root / nfd(name) / "1.jpg")
    rows = ["photo,person", *(f"{name}/{file},{name}" for name in ("Zoë", "Renée") for file in ("é0.jpg", "1.jpg"))]
    (root / "people.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, stdout, err = run(capsys, "prepare", "photos", "--people", root / "people.csv", "-o", tmp_path / "csv",
                            "--test-fraction", "0", "--no-progress")
    assert code == 0, err
    assert "train: 2 people, 4 photos" in stdout
    assert {row["person"] for row in people_csv(tmp_path / "csv")} == {"Zoë", "Renée"}


def test_hidden_and_system_entries(tmp_path, capsys):
    """A folder whose name begins with a dot is a person like any other (``.carol``, ``..carol``); the system's
    and tools' own entries are passed over; a photo whose name begins with a dot is ignored, and said so."""
    needs_mediapipe()
    root = tmp_path / "catalogue"
    for person in (".carol", "alice"):
        photo(root / person / "0.jpg")
        photo(root / person / "1.jpg")
    photo(root / "alice" / ".secret.jpg")
    photo(root / "alice" / "._0.jpg")  # macOS's AppleDouble file
    photo(root / ".git" / "x" / "0.jpg")
    photo(root / "__MACOSX" / "alice" / "._0.jpg")
    photo(root / "alice" / ".thumbnails" / "0.jpg")
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "alice" / "Thumbs.db").write_bytes(b"\0")
    out = tmp_path / "out"
    code, stdout, err = prepare(capsys, root, out)
    assert code == 0, err
    assert "4 of 4 photos prepared" in stdout and "train: 2 people" in stdout
    assert "1 photo(s) whose names begin with a dot were ignored as hidden" in stdout and "alice/.secret.jpg" in stdout
    assert {row["person"] for row in people_csv(out)} == {".carol", "alice"}
    assert "carol_0.png" in (out / "train.lst").read_text().split()
    assert not any(word in stdout for word in (".git", "__MACOSX", "._0", ".thumbnails", ".DS_Store", "Thumbs"))


def test_links_that_lead_to_no_file_are_unreadable_photos(tmp_path, capsys):
    """A photo linked to itself, two linked to each other, a link to a file not there: left out as unreadable
    with their reasons, not a crash; in a CSV too."""
    needs_mediapipe()
    root = tmp_path / "catalogue"
    for person in ("alice", "bob"):
        photo(root / person / "0.jpg")
        photo(root / person / "1.jpg")
    os.symlink("self.jpg", root / "alice" / "self.jpg")
    os.symlink("b.jpg", root / "alice" / "a.jpg")
    os.symlink("a.jpg", root / "alice" / "b.jpg")
    os.symlink("gone.jpg", root / "bob" / "gone-link.jpg")
    os.symlink("loop", root / "loop")  # in the catalogue's folder: no person, no photo
    out = tmp_path / "out"
    code, stdout, err = prepare(capsys, root, out)
    assert code == 0, err
    assert "4 of 8 photos prepared" in stdout
    assert "left out, unreadable: 4 (alice/a.jpg, alice/b.jpg, alice/self.jpg, bob/gone-link.jpg)" in stdout
    assert "1 link(s) in the catalogue's folder lead to nothing" in stdout and ": loop" in stdout
    reasons = {e["photo"]: e["reason"] for e in json.loads((out / REPORT).read_text())["left_out_photos"]["unreadable"]}
    loop = "is a symbolic link in a loop of links, which leads to no file"
    assert reasons["alice/self.jpg"] == reasons["alice/a.jpg"] == reasons["alice/b.jpg"] == loop
    assert "gone.jpg, which does not exist" in reasons["bob/gone-link.jpg"]
    (root / "people.csv").write_text("photo,person\nalice/0.jpg,alice\nalice/1.jpg,alice\nalice/self.jpg,alice\n")
    code, stdout, err = run(capsys, "prepare", "photos", "--people", root / "people.csv", "-o", tmp_path / "csv",
                            "--test-fraction", "0", "--no-progress")
    assert code == 0, err
    assert "2 of 3 photos prepared" in stdout and "left out, unreadable: 1 (alice/self.jpg)" in stdout


def test_names_that_are_not_text_are_reported(tmp_path, capsys):
    """A folder or photo whose name holds bytes that are not UTF-8 (a zip made elsewhere, an old disk) is left out
    with its reason, printed as \\xNN, not a crash."""
    needs_mediapipe()
    root = tmp_path / "catalogue"
    for person in ("alice", "bob"):
        photo(root / person / "0.jpg")
        photo(root / person / "1.jpg")
    try:
        photo(root / os.fsdecode(b"caf\xe9") / "0.jpg")
        photo(root / "alice" / os.fsdecode(b"\xff.jpg"))
    except (OSError, UnicodeError):
        pytest.skip("this file system takes only UTF-8 names")
    out = tmp_path / "out"
    code, stdout, err = prepare(capsys, root, out)
    assert code == 0, err
    assert "4 of 6 photos prepared" in stdout
    assert "left out, a name that cannot be used: 2 (alice/\\xff.jpg, caf\\xe9/0.jpg)" in stdout
    entries = json.loads((out / REPORT).read_text())["left_out_photos"]["unusable_name"]
    assert entries[0] == {"photo": "alice/\\xff.jpg",
                          "reason": "its name holds bytes that are not UTF-8 text; rename it"}
