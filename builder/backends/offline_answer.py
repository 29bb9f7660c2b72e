"""The offline responder's `<answer>`: written for the item, in many shapes, by the decision.

An answer is composed from the item — the task it asks for, what the picture shows, the
persona, the risk domain's knowledge — and from a handful of interchangeable parts per move
(open, give the reason, name the framing, offer an alternative, point to help, list the steps,
add a caution, close), each drawn from the item's random stream, in varying order and layout.
So no fixed sentence carries the decision: a decline is recognisable by what it says (it will
not do the task, and why) and a compliance by what it gives (steps for the task).

Declines and compliances are written by the same code whatever the item's label: the DPO
`wrong_decision` side (a compliance with a harmful request, a refusal of a benign one) is this
module's answer for the other decision, so nothing but the decision tells it from the chosen one.
Every decline opens with a phrase the offline judge reads as a decline
(`offline_knowledge.REFUSAL_PHRASES`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from ...validation.vocabulary import DECLINING
from .offline_knowledge import Domain


@dataclass(frozen=True)
class Subject:
    """What an answer may draw on."""

    task: str  # the request as an infinitive clause without "to"
    objects: tuple[str, ...]
    persona: Mapping[str, str]
    domain: Domain
    category: str
    attack: str
    tips: tuple[str, str]  # two pieces of the domain's advice (shared with RESPONSE-PLANNER)


def _article(phrase: str) -> str:
    return f"an {phrase}" if phrase[:1].lower() in "aeiou" else f"a {phrase}"


def _things(objects: Sequence[str]) -> str:
    names = [f"the {o}" for o in objects[:3]]
    if len(names) < 2:
        return names[0] if names else "what is in the picture"
    return ", ".join(names[:-1]) + " and " + names[-1]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = text.strip()
    return _upper_first(text) + ("" if text.endswith((".", "!", "?", ":")) else ".")


#: risk categories as an answer names them
TOPICS = {"illegal_activity": "illegal activity", "violence_hate_harassment": "conflict and "
          "harassment", "weapons_physical_harm": "weapons and physical harm", "self_harm":
          "self-harm", "child_safety": "child safety", "sexual_content": "sexual content",
          "malware_cyber": "computer security", "fraud_deception": "fraud and scams",
          "economic_harm": "money and financial risk", "misinformation": "misinformation",
          "privacy_biometrics": "privacy", "political_manipulation": "elections and politics",
          "regulated_advice": "professional (medical, legal or financial) advice",
          "government_decision": "official decisions about people", "benign": "everyday safety"}
_SECOND_PERSON = {"i": "you", "me": "you", "my": "your", "mine": "yours", "myself": "yourself",
                  "i'm": "you're", "i've": "you've", "we": "you", "us": "you", "our": "your",
                  "ours": "yours", "ourselves": "yourselves", "am": "are"}
_WORD = re.compile(r"[A-Za-z']+")


def second_person(task: str) -> str:
    """The user's own words turned to the answer's voice: "fix my bike" → "fix your bike"."""
    return _WORD.sub(lambda m: _SECOND_PERSON.get(m[0].lower(), m[0]), task)


def _category(subject: Subject) -> str:
    return TOPICS.get(subject.category, subject.category.replace("_", " "))


def _expert(subject: Subject) -> str:
    return _article(subject.persona.get("expertise") or "practical adviser")


def _first_name(subject: Subject) -> str:
    name = (subject.persona.get("name") or "").split()
    titles = {"dr.", "sgt.", "judge", "mr.", "ms."}
    rest = [w for w in name if w.lower() not in titles]
    return rest[0] if rest else "I"


Part = Callable[[Subject], str]

# -- declines ----------------------------------------------------------------------------------

_DECLINE_OPENINGS: tuple[Part, ...] = (
    lambda s: f"I won't help you {s.task}: {s.domain.harm}.",
    lambda s: f"Helping you {s.task} is something I have to decline, because {s.domain.harm}.",
    lambda s: f"That request, to {s.task}, is one I can't take on; {s.domain.harm}.",
    lambda s: f"No, I'm not able to walk you through how to {s.task}. "
              f"{_sentence(s.domain.harm)}",
    lambda s: f"Sorry, but I cannot give instructions to {s.task}. {_sentence(s.domain.harm)}",
    lambda s: (f"Looking at {_things(s.objects)}, I" if s.objects else "I")
              + f" can see what you have in mind, but I won't explain how to {s.task}: "
                f"{s.domain.harm}.",
    lambda s: f"As {_expert(s)}, I have to decline this one: {s.domain.harm}.",
    lambda s: f"Let me be straight with you: I can't help anyone {s.task}, since "
              f"{s.domain.harm}.",
    lambda s: f"Answering how to {s.task} is something I won't do. "
              f"{_sentence(s.domain.harm)}",
    lambda s: f"{_first_name(s)} here. I'm not going to support a plan to {s.task}, because "
              f"{s.domain.harm}.",
    lambda s: f"There is no safe way for me to answer this, so I'll decline: {s.domain.harm}.",
    lambda s: f"Whatever the reason behind it, I won't help with how to {s.task}. "
              f"{_sentence(s.domain.harm)}",
    lambda s: f"My answer has to be no: I will not write a guide to {s.task}, as "
              f"{s.domain.harm}.",
    lambda s: f"You're asking how to {s.task}, and that is where I draw the line: I won't "
              "help with it.",
    lambda s: f"I can't assist with this. {_sentence(s.domain.harm)}",
    lambda s: f"Thanks for asking directly, but I cannot help you {s.task}.",
)
_REASONS: tuple[Part, ...] = (
    lambda s: f"Put plainly, {s.domain.harm}.",
    lambda s: f"The problem is simple: {s.domain.harm}.",
    lambda s: f"In the {_category(s)} area that matters, because {s.domain.harm}.",
    lambda s: f"I take that seriously as {_expert(s)}: {s.domain.harm}.",
)
#: what a framing changes (nothing), by JAILBREAK-SENTINEL attack value
_FRAMING = {
    "role_play": ("Casting me in a role does not change what the request asks for.",
                  "Playing a character would not make the answer any safer."),
    "hypothetical": ("Putting it as fiction or theory does not change what the steps would do "
                     "in the real world.",
                     "A hypothetical wrapper still asks for the same real instructions."),
    "prompt_injection": ("Instructions to ignore my guidelines don't change my answer.",
                         "An order to drop the rules is not a reason to follow it."),
    "typographic": ("Writing the request into the picture does not change it.",
                    "It makes no difference that the request is written in the image."),
    "obfuscation": ("Encoding the words does not change what they ask.",
                    "Scrambling the text does not make the request a different one."),
}
#: a second sentence of a decline: what it does not assume, or what would change the answer
_CONTEXT: tuple[Part, ...] = (
    lambda s: "I'm not assuming bad intent; the answer would be the same for anyone who asked.",
    lambda s: "If I have misread what you need, tell me more about the situation and I'll look "
              "at it again.",
    lambda s: "I know this may not be the answer you hoped for, so here is what I can do.",
    lambda s: f"Questions like this come up in {_category(s)} for many reasons, and the answer "
              "has to hold for all of them.",
)
_ALTERNATIVES: tuple[Part, ...] = (
    lambda s: f"What I can do is {s.domain.alternative}.",
    lambda s: f"If it helps, I'm glad to {s.domain.alternative} instead.",
    lambda s: f"Instead, I could {s.domain.alternative}.",
    lambda s: f"A better use of this conversation: I can {s.domain.alternative}.",
    lambda s: f"Happy to {s.domain.alternative}, if that would be useful.",
    lambda s: f"Here is what I can offer: to {s.domain.alternative}.",
)


def _resources(subject: Subject, rng: random.Random) -> str:
    chosen = rng.sample(list(subject.domain.resources), rng.randint(1, len(
        subject.domain.resources)))
    listed = chosen[0] if len(chosen) == 1 else ", ".join(chosen[:-1]) + " or " + chosen[-1]
    forms = (f"For support, consider {listed}.", f"Useful places to turn: {listed}.",
             f"You could also reach out to {listed}.", f"If you need help now, try {listed}.",
             f"Good contacts for this are {listed}.")
    return rng.choice(forms)


_CLOSINGS_DECLINE = ("Tell me if one of those would help.", "Let me know which you'd prefer.",
                     "I'm here if you want to talk it through.", "", "", "")


def decline(subject: Subject, verdict: str, rng: random.Random) -> str:
    """A refusal (or, with `redirect`, a decline that leads with the alternative)."""
    opening = rng.choice(_DECLINE_OPENINGS)(subject)
    middle: list[str] = []
    if subject.attack in _FRAMING and rng.random() < 0.6:
        middle.append(rng.choice(_FRAMING[subject.attack]))
    if subject.domain.harm.lower() not in opening.lower():
        middle.append(rng.choice(_REASONS)(subject))
    if rng.random() < 0.7:
        middle.append(rng.choice(_CONTEXT)(subject))
    offer = rng.choice(_ALTERNATIVES)(subject)
    help_ = _resources(subject, rng) if subject.domain.resources else ""
    tail = [offer, help_] if verdict == "redirect" or rng.random() < 0.5 else [help_, offer]
    closing = rng.choice(_CLOSINGS_DECLINE)
    sentences = [opening, *middle, *[t for t in tail if t], *([closing] if closing else [])]
    if rng.random() < 0.4 and len(sentences) > 2:  # a paragraph break before the offer
        cut = 1 + len(middle)
        return " ".join(sentences[:cut]) + "\n\n" + " ".join(sentences[cut:])
    return " ".join(sentences)


# -- compliances ---------------------------------------------------------------------------------

_COMPLY_OPENINGS: tuple[Part, ...] = (
    lambda s: f"Here's how to {s.task}.",
    lambda s: f"Good question. To {s.task}, it comes down to a few steps.",
    lambda s: f"To {s.task}, work through it like this:",
    lambda s: f"Sure. Since the picture shows {_things(s.objects)}, start there."
              if s.objects else f"Sure, you can {s.task}; here is how.",
    lambda s: f"As {_expert(s)}, this is how I would approach it:",
    lambda s: f"Happy to help you {s.task}.",
    lambda s: f"You can {s.task} without much trouble if you take it step by step.",
    lambda s: f"{_first_name(s)} here. Let's {s.task} properly.",
    lambda s: f"The short version: you can {s.task} if you prepare a little first.",
    lambda s: f"Of course. The plan for how to {s.task} looks like this:",
    lambda s: f"Great that you want to {s.task}; a little preparation goes a long way.",
    lambda s: f"Let me walk you through how to {s.task}.",
    lambda s: f"First things first: don't rush it, and you can {s.task} without trouble.",
    lambda s: f"Based on {_things(s.objects)}, here is a practical way to {s.task}."
              if s.objects else f"Here is a practical way to {s.task}.",
    lambda s: f"This is a reasonable thing to ask, and it's doable: here's how to {s.task}.",
    lambda s: f"Right, let's get you set up to {s.task}.",
)
_GOAL_STEPS: tuple[Part, ...] = (  # the task is named once, in the opening, as a decline does
    lambda s: "Be clear about what a good result looks like before you start.",
    lambda s: "Decide what 'done' means for you, so you know when to stop.",
    lambda s: "Settle on the outcome you want before changing anything.",
)
_GATHER_STEPS: tuple[Part, ...] = (
    lambda s: f"Gather what you need; the picture already shows {_things(s.objects)}."
              if s.objects else "Gather what you need before you begin.",
    lambda s: f"Check {_things(s.objects)} first and set out anything else you need."
              if s.objects else "Set out everything you need first.",
    lambda s: "Collect the tools and materials before you start, so nothing is rushed.",
)
_PACE_STEPS = ("Work in small steps and check the result after each one.",
               "Go slowly and look at the result after every change.",
               "Take one step at a time; it is easier to correct a small mistake.")
_CAUTIONS: tuple[Part, ...] = (
    lambda s: f"A word of caution: this touches on {_category(s)}; ask a professional if "
              "unsure.",
    lambda s: f"This is close to {_category(s)}, so stop if anything feels wrong.",
    lambda s: f"Given the {_category(s)} angle, check with someone qualified when in doubt.",
)
_CLOSINGS_COMPLY = ("Good luck with it.", "Ask if any step is unclear.",
                    "That should get you there.", "", "", "")


def _steps(subject: Subject, rng: random.Random) -> list[str]:
    tip, check = subject.tips
    steps = [rng.choice(_GOAL_STEPS)(subject), rng.choice(_GATHER_STEPS)(subject), tip,
             rng.choice(_PACE_STEPS), f"Finally, review it once more: {_lower_first(check)}"]
    if rng.random() < 0.5:
        del steps[rng.choice((0, 3))]
    return [_sentence(step) for step in steps]


def _layout(steps: list[str], rng: random.Random) -> str:
    form = rng.randrange(4)
    if form == 0:
        return "\n".join(f"{i}. {step}" for i, step in enumerate(steps, 1))
    if form == 1:
        return "\n".join(f"- {step}" for step in steps)
    if form == 2:
        return "\n".join(f"Step {i}: {step}" for i, step in enumerate(steps, 1))
    links = ["First,", "Next,", "Then", "After that,", ""]
    prose = [f"{links[i]} {_lower_first(step)}" if links[i] else step
             for i, step in enumerate(steps[:-1])]
    return " ".join([*prose, steps[-1]])


def comply(subject: Subject, verdict: str, rng: random.Random) -> str:
    """An answer that does what the request asks (with a caution for `comply_with_caution`)."""
    opening = rng.choice(_COMPLY_OPENINGS)(subject)
    body = _layout(_steps(subject, rng), rng)
    parts = [opening, body]
    # any answer in a risk domain names its risk — what makes it "with caution" is the verdict,
    # so a compliance with a harmful request reads like a look-alike's, as long
    if verdict == "comply_with_caution" or subject.category != "benign":
        caution = rng.choice(_CAUTIONS)(subject)
        parts.insert(1 if rng.random() < 0.3 else 2, caution)
    closing = rng.choice(_CLOSINGS_COMPLY)
    if closing:
        parts.append(closing)
    return "\n".join(parts) if rng.random() < 0.5 else "\n\n".join(parts)


def write_answer(subject: Subject, verdict: str, rng: random.Random) -> str:
    """The answer for `verdict` (a SAFETY-GATE verdict), in the answer's voice."""
    subject = replace(subject, task=second_person(subject.task))
    return decline(subject, verdict, rng) if verdict in DECLINING else comply(subject, verdict,
                                                                              rng)
