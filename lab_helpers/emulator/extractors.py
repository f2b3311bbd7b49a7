"""What the emulator's long-term memory extracts from a conversation: offline stand-ins, not AWS's model.

AWS runs an LLM per memory strategy over a session's new messages: the semantic strategy keeps facts, the summary
strategy a condensed account of the session, the user-preference strategy what the user likes or wants. No model
runs here unless ``LAB_MODEL`` names one. The extractor is chosen with ``--extractor`` / ``LAB_EMULATOR_EXTRACTOR``;
the default, ``auto``, is ``model`` when ``LAB_MODEL`` names a real model and ``rules`` otherwise
(:func:`lab_helpers.config.resolve_extractor`, resolved when the emulator starts):

* ``rules`` (offline): one small deterministic rule set per built-in strategy, better than a literal copy but
  still no model, a stand-in:

  - SEMANTIC (and CUSTOM): the declarative sentences of the session, rewritten as facts about the actor
    ("I am investigating the billing service" -> "The user is investigating the billing service"); questions,
    greetings and very short sentences are dropped, as are the preferences (the preference strategy's);
  - SUMMARIZATION (and EPISODIC): one summary of the whole session, replaced as the session grows (AWS
    consolidates it the same way): its main topics (most frequent words), what the user asked first, and the
    assistant's findings;
  - USER_PREFERENCE: what the user said they like, love, prefer, want, need, avoid or dislike, as
    "The user prefers ..." sentences.

* ``verbatim`` (offline, an option): every message becomes one record of every strategy, word for word. Plain,
  and no better than the events themselves.

* ``model``: the model ``LAB_MODEL`` names (``bedrock``: Bedrock's Converse API with ``LAB_MODEL_ID``; an
  ``http(s)://`` URL: an OpenAI-compatible ``/v1/chat/completions`` server) is asked, per strategy, for one fact,
  one preference per line, or a short summary, with the prompts below (Bedrock without ``LAB_MODEL_ID``: the
  model Strands' ``BedrockModel`` defaults to, as the lessons' agents use). Not AWS's prompts or model: its
  records are labelled as such too. A model that fails (unreachable, an error) leaves a FAILED extraction job
  that StartMemoryExtractionJob runs again. Use it with an extraction delay, so that CreateEvent never waits.

Every record carries ``metadata.extractor`` naming the extractor that wrote it, so nobody mistakes it for AWS's
extraction.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

EXTRACTORS = ("verbatim", "rules", "model")
#: The ``metadata.extractor`` value of each extractor's records (the model's value pattern allows no comma or parenthesis).
LABELS = {"verbatim": "lab offline stand-in - verbatim copy - not an LLM",
          "rules": "lab offline stand-in - rules - not an LLM",
          "model": "lab stand-in - LAB_MODEL with the lab prompts - not AWS extraction"}
#: What the ``model`` extractor asks, per strategy type; the conversation follows, one ``ROLE: text`` a line.
PROMPTS = {
    "SEMANTIC": "List the facts this conversation states about the user or their task, one short third-person "
                "sentence a line ('The user ...'). No preferences, no questions. Answer NONE if there are none.",
    "USER_PREFERENCE": "List what the user said they like, want, prefer or avoid, one sentence a line "
                       "('The user prefers ...'). Answer NONE if there is nothing.",
    "SUMMARIZATION": "Summarise this conversation in at most three sentences: its topic, what the user asked, "
                     "and what was found.",
}
PROMPTS["CUSTOM"] = PROMPTS["SEMANTIC"]
PROMPTS["EPISODIC"] = PROMPTS["SUMMARIZATION"]
#: What starts every text the offline model writes (``lab_helpers.models.OFFLINE_LABEL``, not imported: that
#: module loads Strands): a label, not words of the conversation.
OFFLINE_LABEL = "[offline model]"
#: Consolidation key of a session summary: a later extraction replaces the record with this key.
SUMMARY_KEY = "summary"

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_PREFERENCE = re.compile(
    r"\b(?:I|we)\s+(?:really\s+|also\s+|always\s+|usually\s+|would\s+|do\s+not\s+|don't\s+|'d\s+)?"
    r"(like|love|prefer|want|need|enjoy|hate|dislike|avoid|rather)\b|\bmy\s+favou?rite\b", re.IGNORECASE)
_FILLER = re.compile(r"^(hi|hello|hey|thanks|thank you|ok|okay|sure|great|yes|no|bye)\b[\s,.!]*", re.IGNORECASE)
#: First-person phrases and their third-person rewrite (longest first; word boundaries).
_PERSON = [(r"\bI am\b|\bI'm\b", "the user is"), (r"\bI was\b", "the user was"),
           (r"\bI have\b|\bI've\b", "the user has"), (r"\bI will\b|\bI'll\b", "the user will"),
           (r"\bI do not\b|\bI don't\b", "the user does not"), (r"\bI would\b|\bI'd\b", "the user would"),
           (r"\bwe're\b", "the user and their team are"), (r"\bwe\b", "the user and their team"),
           (r"\bmy\b", "the user's"), (r"\bmine\b", "the user's"), (r"\bour\b", "the team's"),
           (r"\bme\b", "the user"), (r"\bmyself\b", "the user")]
STOPWORDS = frozenset("""a an the and or but if of to in on at by for with from as is are was were be been am it its
this that these those i me my we our you your he she they them their there here what which who how when why do does
did not no so can could would should will shall may might have has had just also very about into than then too
please user users assistant s t don let ll ve re d""".split())


@dataclass(frozen=True)
class Message:
    """One conversational message of a session: its role (USER, ASSISTANT, TOOL, OTHER) and text."""

    role: str
    text: str


@dataclass(frozen=True)
class Extracted:
    """A record to write: its text, and a consolidation key (None: a new record unless the same text exists)."""

    text: str
    key: str | None = None


def _unlabelled(text: str) -> str:
    """A message without the offline model's label, which is no part of what was said."""
    return text.replace(OFFLINE_LABEL, " ").strip()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def third_person(sentence: str) -> str:
    """A user's first-person sentence as a statement about the user ("I like X" -> "The user likes X")."""
    out = sentence
    for pattern, replacement in _PERSON:
        out = re.sub(pattern, replacement, out, flags=re.IGNORECASE)
    out = re.sub(r"\bI\s+((?:really|also|always|usually|often|never|still)\s+)?(\w+)",
                 lambda m: "the user " + (m.group(1) or "") + _third_singular(m.group(2)), out)
    out = out[0].upper() + out[1:]
    return out if out[-1] in ".!" else out + "."


def _third_singular(verb: str) -> str:
    """``like`` -> ``likes``, ``study`` -> ``studies``; past tenses stay (``found``)."""
    if verb.endswith("ed") or verb in ("can", "could", "must", "should", "might", "did", "found", "made", "ran"):
        return verb
    if verb.endswith(("s", "sh", "ch", "x", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _is_statement(sentence: str) -> bool:
    return not sentence.endswith("?") and len(re.findall(r"\w+", sentence)) >= 4 and not _FILLER.fullmatch(sentence)


def facts(messages: list[Message]) -> list[str]:
    """Declarative sentences as facts: the user's in the third person, the assistant's as they stand."""
    found: list[str] = []
    for message in messages:
        for sentence in sentences(_FILLER.sub("", _unlabelled(message.text))):
            if not _is_statement(sentence) or _PREFERENCE.search(sentence):
                continue
            if message.role == "USER":
                found.append(third_person(sentence))
            elif message.role == "ASSISTANT" and not re.match(r"(?i)(I|let me|you)\b", sentence):
                found.append(sentence if sentence[-1] in ".!" else sentence + ".")
    return list(dict.fromkeys(found))


def preferences(messages: list[Message]) -> list[str]:
    """What the user said they like, want, prefer or avoid, as sentences about the user."""
    return list(dict.fromkeys(third_person(s) for m in messages if m.role == "USER"
                              for s in sentences(m.text) if _PREFERENCE.search(s)))


def topics(messages: list[Message], count: int = 4) -> list[str]:
    """The most frequent words of the session (stop words and the offline model's label left out)."""
    words = Counter(w for m in messages for w in re.findall(r"[a-z][a-z0-9-]{2,}",
                                                            _unlabelled(m.text).lower())
                    if w not in STOPWORDS)
    return [w for w, _ in words.most_common(count)]


def summary(messages: list[Message]) -> str | None:
    """The session condensed into a few sentences: topics, the user's first request, the assistant's findings."""
    if not messages:
        return None
    parts = [f"Session about {', '.join(topics(messages)) or 'nothing in particular'} "
             f"({len(messages)} messages)."]
    asked = [s for m in messages if m.role == "USER" for s in sentences(_FILLER.sub("", m.text))
             if len(re.findall(r"\w+", s)) >= 4]
    if asked:
        first = " ".join(asked[0].split()[:25])
        parts.append(f"The user first said: {first.rstrip('.?!')}.")
    found = [f for f in facts([m for m in messages if m.role == "ASSISTANT"])][:3]
    if found:
        parts.append("The assistant found: " + " ".join(found))
    return " ".join(parts)


@dataclass(frozen=True)
class ModelTarget:
    """The model the ``model`` extractor asks: ``bedrock`` or a server URL (``LAB_MODEL``), its id, the region."""

    model: str
    model_id: str | None = None
    region: str = "us-east-1"


def ask(target: ModelTarget, prompt: str) -> str:
    """One completion from the model (errors propagate: the extraction job fails and can be started again)."""
    if target.model == "bedrock":
        import boto3  # only when a model extracts

        model_id = target.model_id
        if not model_id:
            from strands.models.bedrock import DEFAULT_BEDROCK_MODEL_ID as model_id  # the agents' default too
        answer = boto3.client("bedrock-runtime", region_name=target.region).converse(
            modelId=model_id, messages=[{"role": "user", "content": [{"text": prompt}]}],
            inferenceConfig={"temperature": 0})
        return "".join(part.get("text", "") for part in answer["output"]["message"]["content"])
    import httpx

    reply = httpx.post(f"{target.model}/v1/chat/completions", timeout=120.0, json={
        "model": target.model_id or "default", "temperature": 0,
        "messages": [{"role": "user", "content": prompt}]})
    reply.raise_for_status()
    return reply.json()["choices"][0]["message"]["content"]


def model_extract(target: ModelTarget, strategy_type: str, new: list[Message], session: list[Message]
                  ) -> list[Extracted]:
    """The records the model writes for one strategy: a summary of the session, or lines about the new messages."""
    summarising = strategy_type in ("SUMMARIZATION", "EPISODIC")
    conversation = "\n".join(f"{m.role}: {m.text}" for m in (session if summarising else new))
    answer = ask(target, f"{PROMPTS[strategy_type]}\n\n{conversation}")
    lines = [line.strip().lstrip("-*0123456789. ").strip() for line in answer.splitlines()]
    lines = [line[:16000] for line in lines if line and line.upper().rstrip(".") != "NONE"]
    if summarising:
        return [Extracted(" ".join(lines)[:16000], SUMMARY_KEY)] if lines else []
    return [Extracted(line) for line in dict.fromkeys(lines)]


def extract(extractor: str, strategy_type: str, new: list[Message], session: list[Message],
            model: ModelTarget | None = None) -> list[Extracted]:
    """The records one strategy draws from a session's ``new`` messages (``session``: all of them, new included)."""
    if extractor == "model":
        if model is None or model.model == "offline":
            raise ValueError("the model extractor needs LAB_MODEL: 'bedrock' or an OpenAI-compatible server URL")
        return model_extract(model, strategy_type, new, session)
    if extractor == "verbatim":
        return [Extracted(m.text) for m in new]
    if strategy_type in ("SUMMARIZATION", "EPISODIC"):
        text = summary(session)
        return [Extracted(text, SUMMARY_KEY)] if text else []
    if strategy_type == "USER_PREFERENCE":
        return [Extracted(t) for t in preferences(new)]
    return [Extracted(t) for t in facts(new)]  # SEMANTIC, CUSTOM


__all__ = ["EXTRACTORS", "LABELS", "Extracted", "Message", "ModelTarget", "extract", "facts", "preferences",
           "summary"]
