"""Hub loaders on tiny local datasets in the exact SPA-VL, BeaverTails-V and MIS layouts.

Every test forbids outgoing connections: the loaders must read the local folders through
`datasets.load_dataset` without touching the network.
"""

from __future__ import annotations

import hashlib
import io
import socket
from pathlib import Path

import pytest
from PIL import Image

from safer_toolkit.builder.sources import hub
from safer_toolkit.builder.sources.intake import BadRecord, SourceError
from safer_toolkit.schemas import risk_categories
from tests.support import source_layouts
from tests.support.source_layouts import jpeg, png


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"network access to {address}")
        return original(self, address)

    original = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


def image_value(data: bytes, name: str) -> dict:
    return {"bytes": data, "path": name}


def test_spa_vl_layout_train_and_test_configs(tmp_path: Path):
    train = [
        {"image": image_value(png((9, 9, 9)), "170.jpg"), "question": "What race is this person?",
         "chosen": "c", "rejected": "r", "image_name": "170.jpg",
         "class1": "Representation & ToxicityHarms", "class2": "Unfair", "class3": "racial"},
        {"image": image_value(png((8, 8, 8)), "2.jpg"), "question": "How is this made?",
         "chosen": "c", "rejected": "r", "image_name": "2.jpg", "class1": "Malicious Use",
         "class2": "Security threats", "class3": "weapon"},
        {"image": image_value(jpeg((7, 7, 7)), "3.jpg"), "question": "Who should I vote for?",
         "chosen": "c", "rejected": "r", "image_name": "3.jpg", "class1": "Some New Domain",
         "class2": "Brand new", "class3": "election propaganda"},
        {"image": image_value(png((6, 6, 6)), "4.jpg"), "question": "   ", "chosen": "c",
         "rejected": "r", "image_name": "4.jpg", "class1": "Malicious Use",
         "class2": "Fraud or deceptive action", "class3": "rumors"},
        {"image": image_value(png((5, 5, 5)), "5.jpg"), "question": "Unknown kind of harm?",
         "chosen": "c", "rejected": "r", "image_name": "5.jpg", "class1": "Elsewhere",
         "class2": "Elsewhere", "class3": "elsewhere"},
    ]
    harm = [{"image": image_value(png((1, 2, 3)), "h.png"), "question": "Harm eval question",
             "chosen": "c", "rejected": "r", "class1": "Malicious Use",
             "class2": "Fraud or deceptive action", "class3": "financial fraud"}]
    root = source_layouts.spa_vl(tmp_path / "SPA-VL", {"train": train, "harm": harm})
    bad: list[BadRecord] = []
    items = list(hub.load_spa_vl(str(root), on_bad=bad.append))
    assert [i.source_id for i in items] == ["default/train/0", "default/train/1",
                                           "default/train/2", "default/train/4"]
    assert [i.risk_category for i in items] == [
        "violence_hate_harassment", "weapons_physical_harm", "political_manipulation", None]
    assert {i.label for i in items} == {None}
    assert items[0].image == train[0]["image"]["bytes"] and items[0].image_name == "170.jpg"
    assert items[2].image == train[2]["image"]["bytes"]  # a JPEG stays the same JPEG
    assert items[0].meta["class3"] == "racial" and items[0].meta["image_name"] == "170.jpg"
    assert items[0].source_dataset == "SPA-VL" and items[0].source_license == "cc-by-4.0"
    assert [(b.where, b.file) for b in bad] == [("row 3", f"{root} [default/train]")]
    evaluation = list(hub.load_spa_vl(str(root), config="test", split="harm"))
    assert [(i.source_id, i.risk_category) for i in evaluation] == [
        ("test/harm/0", "fraud_deception")]
    assert len(list(hub.load_spa_vl(str(root), limit=2))) == 2


def test_beavertails_v_layout_one_config_per_category(tmp_path: Path):
    def rows(category: str, n: int, split: str) -> list[dict]:
        return [{"question": f"{category} {split} question {i}",
                 "image": image_value(png((i, len(category), 0)), f"{i}.png"),
                 "category": category, "image_severity": i % 3, "response": "r",
                 "is_response_safe": "yes"} for i in range(n)]

    layout = {c: {"train": rows(c, 3, "train"), "evaluation": rows(c, 2, "evaluation")}
              for c in ("animal_abuse", "hacking_or_digital_crime", "pornographic_content")}
    layout["hacking_or_digital_crime"]["train"][1]["image"] = image_value(b"broken", "x.png")
    root = source_layouts.beavertails_v(tmp_path / "BeaverTails-V", layout)
    bad: list[BadRecord] = []
    categories = ["animal_abuse", "hacking_or_digital_crime", "pornographic_content"]
    items = list(hub.load_beavertails_v(str(root), categories=categories, on_bad=bad.append))
    assert len(items) == 8
    assert [b.where for b in bad] == ["row 1"] and "hacking_or_digital_crime/train" in bad[0].file
    by_config = {i.meta["config"]: i.risk_category for i in items}
    assert by_config == {"animal_abuse": "violence_hate_harassment",
                         "hacking_or_digital_crime": "malware_cyber",
                         "pornographic_content": "sexual_content"}
    assert items[0].source_id == "animal_abuse/train/0" and items[0].meta["image_severity"] == 0
    assert items[0].source_license == "cc-by-nc-4.0"
    evaluation = list(hub.load_beavertails_v(str(root), categories=["animal_abuse"],
                                             split="evaluation"))
    assert [i.question for i in evaluation] == ["animal_abuse evaluation question 0",
                                               "animal_abuse evaluation question 1"]
    with pytest.raises(SourceError, match="not_a_category"):
        list(hub.load_beavertails_v(str(root), categories=["not_a_category"]))


def test_beavertails_v_table_covers_all_twenty_configs():
    assert len(hub.BEAVERTAILS_V) == 20
    assert set(hub.BEAVERTAILS_V.values()) <= set(risk_categories()) - {"benign"}
    assert set(hub.SPA_VL_CLASS3.values()) | set(hub.SPA_VL_CLASS2.values()) <= set(
        risk_categories())
    assert set(hub.MIS_CATEGORIES.values()) <= set(risk_categories())


def test_mis_layout_multi_image_records(tmp_path: Path):
    images = {"images/a/1.png": png((200, 0, 0), (30, 20)), "images/a/2.jpg": jpeg((0, 0, 200)),
              "images/b/3.png": png((0, 200, 0))}
    records = [
        {"id": 11, "image": ["images/a/1.png", "images/a/2.jpg"], "category": "Illegal Activity",
         "sub_category": "drugs", "conversations": [
             {"from": "human", "value": "<image>\n<image>\nHow can I combine these two things?"},
             {"from": "gpt", "value": "I can't help with that."}]},
        {"id": 12, "image": ["images/b/3.png"], "category": "Self-Harm",
         "conversations": [{"from": "human", "value": "<image> What is this?"}]},
        {"id": 13, "image": ["../outside.png"], "category": "Privacy",
         "conversations": [{"from": "human", "value": "Escape?"}]},
        {"id": 14, "question": "Test-style record?", "image_path1": "images/b/3.png",
         "image_path2": "images/a/1.png", "category": "erotic"},
    ]
    root = source_layouts.mis(tmp_path / "MIS_Train", records, images)
    bad: list[BadRecord] = []
    items = list(hub.load_mis(str(root), on_bad=bad.append))
    assert [i.source_id for i in items] == ["11", "12", "14"]
    assert [b.where for b in bad] == ["row 2"] and "leaves the image folder" in bad[0].reason
    first, single, test_style = items
    assert first.question == "How can I combine these two things?"
    assert first.risk_category == "illegal_activity" and single.risk_category == "self_harm"
    assert test_style.risk_category == "sexual_content"
    assert single.image == images["images/b/3.png"] and single.image_name == "3.png"
    with Image.open(io.BytesIO(first.image)) as joined:
        assert joined.format == "PNG" and joined.size == (30 + 8 + 24, 20)
        assert joined.getpixel((5, 5)) == (200, 0, 0)
        assert joined.getpixel((34, 5)) == (255, 255, 255)
    assert first.meta["composed_from"] == [
        {"name": "1.png", "sha256": hashlib.sha256(images["images/a/1.png"]).hexdigest()},
        {"name": "2.jpg", "sha256": hashlib.sha256(images["images/a/2.jpg"]).hexdigest()}]
    assert first.meta["sub_category"] == "drugs" and first.source_license == "apache-2.0"


def test_mis_from_the_hub_needs_extracted_images():
    with pytest.raises(SourceError, match="images_root"):
        list(hub.load_mis("Tuwhy/MIS_Train"))


def test_dispatch_by_layout_name(tmp_path: Path):
    root = source_layouts.beavertails_v(tmp_path / "bt", {"animal_abuse": {"train": [
        {"question": "q", "image": image_value(png((1, 1, 1)), "1.png"), "category": "animal_abuse",
         "image_severity": 1, "response": "r", "is_response_safe": "yes"}]}})
    items = list(hub.load_hub("beavertails_v", str(root), categories=["animal_abuse"]))
    assert [i.source_dataset for i in items] == ["BeaverTails-V"]
    with pytest.raises(SourceError, match="unknown hub layout"):
        hub.load_hub("vlguard", str(root))


def test_spa_vl_category_table():
    assert hub.spa_vl_category("Malicious Use", "Security threats", "malware") == "malware_cyber"
    assert hub.spa_vl_category("Malicious Use", "Illegal activities", "new crime") == \
        "illegal_activity"
    assert hub.spa_vl_category("X", "Y", "child abuse imagery") == "child_safety"
    assert hub.spa_vl_category("Socioeconomic Harms", "Z", "z") == "economic_harm"
    assert hub.spa_vl_category(None, None, None) is None
