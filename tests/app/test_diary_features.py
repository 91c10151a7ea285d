"""What the diary app needs from the API: the language setting (and Korean crisis replies for
people who chose Korean), helplines as tap targets, mood check-ins, and what a reloaded page
reads to restore its conversation."""

from __future__ import annotations

import re

import pytest

from mindwell.safety import crisis_reply
from mindwell.safety.crisis import SAFETY_PLAN_STEPS, crisis_mode_reply

CRISIS = "I have pills saved up and tonight is the night"
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def send(client, session_id: str, text: str) -> dict:
    response = client.post(f"/api/v1/sessions/{session_id}/messages?stream=false",
                           json={"text": text})
    assert response.status_code == 200, response.text
    return response.json()


def all_korean(text: str) -> bool:
    """Every line of ``text`` has Korean words (an official English name may stand beside
    them in brackets, a number or address after them)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(HANGUL.search(line) for line in lines)


@pytest.mark.parametrize("locale", [None, "US", "KR", "GB", "IE", "FR"])
@pytest.mark.parametrize("categories", [(), ("abuse",)])
def test_every_line_of_the_korean_crisis_reply_is_korean(locale, categories):
    assert all_korean(crisis_reply(locale, korean=True, categories=categories))
    for step in range(len(SAFETY_PLAN_STEPS["ko"]) + 1):
        assert all_korean(crisis_mode_reply("...", step, locale, korean=True))
    # English replies are unchanged: English names, no Korean words.
    assert not HANGUL.search(crisis_reply("US", categories=categories))


def test_the_language_setting_and_crisis_replies_in_korean(client):
    me = client.get("/api/v1/me").json()
    assert me["language"] is None  # the browser's language until one is chosen
    assert client.put("/api/v1/settings", json={"language": "fr"}).status_code == 422
    me = client.put("/api/v1/settings", json={"language": "ko"}).json()
    assert me["language"] == "ko" and client.get("/api/v1/me").json()["language"] == "ko"

    # An English crisis message from someone who chose Korean: the whole reply in Korean.
    entry = client.post("/api/v1/diary", json={"text": CRISIS}).json()
    assert entry["escalated"] and all_korean(entry["reply"]), entry["reply"]
    session_id = client.post("/api/v1/sessions").json()["id"]
    done = send(client, session_id, CRISIS)
    assert done["escalated"] and done["crisis_mode"] and all_korean(done["reply"])
    assert all_korean(send(client, session_id, "what do I do")["reply"])

    assert client.put("/api/v1/settings", json={"language": ""}).json()["language"] is None
    entry = client.post("/api/v1/diary", json={"text": CRISIS}).json()
    assert entry["escalated"] and not HANGUL.search(entry["reply"])


def test_helplines_come_with_tap_targets(client):
    me = client.put("/api/v1/settings", json={"locale": "US"}).json()
    main = me["helplines"][0]
    assert main["en"] == "988 Suicide & Crisis Lifeline: call or text 988"
    assert HANGUL.search(main["ko"])
    assert main["links"] == [{"text": "988", "href": "tel:988"}]
    assert me["helplines"][-1]["links"] == [{"text": "findahelpline.com",
                                             "href": "https://findahelpline.com"}]
    dial = {d["text"]: d["href"] for d in me["dial"]}
    assert dial["116 123"] == "tel:116123" and dial["109"] == "tel:109"
    assert dial["1-800-799-7233"] == "tel:18007997233"
    assert dial["88788"] == "sms:88788?body=START"  # a text line, not a call
    lengths = [len(d["text"]) for d in me["dial"]]
    assert lengths == sorted(lengths, reverse=True)  # longest first, for replacing in text
    # Every number a fixed reply names can be tapped.
    for locale in (None, "US", "KR", "GB"):
        for korean in (False, True):
            for kind in ((), ("abuse",)):
                reply = crisis_reply(locale, korean=korean, categories=kind)
                # Numbers to call or text ("under 19", "19세 미만" is an age).
                numbers = re.findall(r"(?<![\w-])(?<!under )\d[\d -]*\d(?![\w-]|세)", reply)
                for number in numbers:
                    assert number.strip() in dial, (number, reply)


def test_mood_check_ins_are_kept_charted_and_erased(client):
    saved = client.post("/api/v1/checkins", json={"mood": 4, "tags": ["work", " sleep ",
                                                                       "work"]}).json()
    assert saved["stored"] and saved["id"] and saved["tags"] == ["work", "sleep"]
    assert client.post("/api/v1/checkins", json={"mood": 2}).json()["tags"] == []
    retagged = client.put(f"/api/v1/checkins/{saved['id']}", json={"tags": ["work", "rest"]})
    assert retagged.json()["tags"] == ["work", "rest"] and retagged.json()["mood"] == 4
    assert client.put("/api/v1/checkins/999999", json={"tags": []}).status_code == 404
    listed = client.get("/api/v1/checkins").json()["checkins"]
    assert [c["mood"] for c in listed] == [2, 4]
    point = client.get("/api/v1/mood").json()["points"][-1]
    assert point["mood"] == 3 and point["checkins"] == 2 and point["entries"] == 0
    assert point["depression"] is None and point["tags"] == ["rest", "work"]
    assert client.get("/api/v1/mood.png").content.startswith(b"\x89PNG")

    for bad in ({"mood": 0}, {"mood": 6}, {"mood": "good"}, {"mood": 3, "tags": ["x" * 41]},
                {"mood": 3, "tags": [str(i) for i in range(9)]}):
        response = client.post("/api/v1/checkins", json=bad)
        assert response.status_code == 422 and response.json()["error"]["message"], bad

    assert client.delete(f"/api/v1/checkins/{saved['id']}").json() == {"deleted": 1}
    assert client.delete(f"/api/v1/checkins/{saved['id']}").status_code == 404
    assert client.delete("/api/v1/data").json()["deleted"]["checkins"] == 1
    assert client.get("/api/v1/checkins").json()["checkins"] == []

    client.put("/api/v1/settings", json={"mode": "ephemeral"})
    unsaved = client.post("/api/v1/checkins", json={"mood": 5}).json()
    assert unsaved["stored"] is False and unsaved["id"] is None
    assert client.get("/api/v1/checkins").json()["checkins"] == []


def test_a_reloaded_page_finds_its_conversation(client):
    """The app keeps only the session id; the conversation comes back from the server."""
    session_id = client.post("/api/v1/sessions").json()["id"]
    first = send(client, session_id, "I moved to a new city last month.")
    send(client, session_id, CRISIS)
    detail = client.get(f"/api/v1/sessions/{session_id}").json()
    assert detail["ended_at"] is None and detail["crisis_mode"] is True
    assert [(t["role"], t["text"]) for t in detail["turns"]][:2] == [
        ("user", "I moved to a new city last month."), ("assistant", first["reply"])]
    assert detail["turns"][-1]["role"] == "assistant"
    assert "988" in detail["turns"][-1]["text"] or "findahelpline" in detail["turns"][-1]["text"]
    # Past chats: listed newest first, openable after they end.
    client.post(f"/api/v1/sessions/{session_id}/end")
    listed = client.get("/api/v1/sessions").json()["sessions"]
    assert listed[0]["id"] == session_id and listed[0]["ended_at"] and listed[0]["turns"] == 2
    assert len(client.get(f"/api/v1/sessions/{session_id}").json()["turns"]) == 4
