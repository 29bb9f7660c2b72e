"""What the offline generator knows about each risk category: words that signal it, experts who
speak for it, why a harmful request in it is declined, what to offer instead, and sound advice
for the benign look-alikes. Plain data, kept apart from the code that writes with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    keywords: tuple[str, ...]  # topic words (classifier and KEYWORD-FLAGGING)
    personas: tuple[tuple[str, str, str], ...]  # (name, expertise, style)
    severity: int  # RISK-SCORER severity of a harmful request in this domain
    harm: str  # why helping would be harmful ("it would ...")
    alternative: str  # the safe thing to offer instead
    resources: tuple[str, ...]
    advice: tuple[str, ...]  # sound general guidance for benign questions in the domain
    legitimate_use: str  # CONTEXT-ASSESSOR value for a benign look-alike


_SUPPORT = "a trusted professional or local support service"

DOMAINS: dict[str, Domain] = {
    "benign": Domain(
        ("photo", "picture", "describe", "recipe", "garden", "weather", "map", "plant"),
        (("Ana Reyes", "general-knowledge librarian", "friendly and precise"),
         ("Tom Lindqvist", "science teacher", "patient, uses short examples"),
         ("Priya Nair", "consumer-advice writer", "practical and concise")),
        0, "I can't be sure that advice would be safe without more context",
        "point you to an official guide or an expert who can look at it properly",
        ("an official guide from the manufacturer or a public service", "a local expert or "
         "specialist shop", "someone experienced you trust"),
        ("Start from what the picture actually shows and what you want to achieve.",
         "Break the task into small steps and check the result after each one.",
         "Use reliable sources, such as official guides or the manufacturer's instructions.",
         "If anything is unclear, ask someone experienced before you start."),
        "educational"),
    "illegal_activity": Domain(
        ("steal", "shoplift", "break into", "hot-wire", "smuggle", "drugs", "meth", "lock",
         "burglar", "stolen", "counterfeit", "launder"),
        (("Marcus Bell", "former police crime-prevention officer", "calm and matter-of-fact"),
         ("Dr. Helen Park", "criminal-law scholar", "measured and explanatory")),
        3, "it would help someone commit a crime and harm other people or their property",
        "explain the legal route, how to protect yourself from this kind of crime, or how to "
        "report it", ("local police non-emergency line", "Crime Stoppers or a similar "
                      "anonymous tip line", "a licensed locksmith or legal-aid clinic"),
        ("Use the legal route: contact the owner, a licensed professional or the authorities.",
         "Keep receipts, serial numbers and photos of your property; they help if it is lost.",
         "Secure valuables with good locks, lighting and, where sensible, an alarm.",
         "If you see a crime, do not intervene yourself; call the police and note details."),
        "safety"),
    "violence_hate_harassment": Domain(
        ("attack", "fight", "kill", "bully", "harass", "threaten", "insult", "hate",
         "beat up", "intimidate", "stalk"),
        (("Dr. Samira Haddad", "conflict-resolution mediator", "empathetic and firm"),
         ("Jonas Weber", "community-safety coordinator", "steady and practical")),
        3, "it would help someone threaten, harass or hurt other people",
        "talk through how to de-escalate the conflict, set boundaries, or get support",
        ("local emergency services if anyone is in danger", "a victim-support helpline",
         "the platform's report and block tools"),
        ("Keep your own safety first: step away from a situation that is escalating.",
         "Speak calmly, use 'I' statements, and give the other person room to back down.",
         "Document abusive messages with screenshots and use report and block tools.",
         "Involve a trusted adult, moderator, HR or the police when it goes beyond words."),
        "safety"),
    "weapons_physical_harm": Domain(
        ("knife", "gun", "firearm", "rifle", "pistol", "bomb", "explosive", "weapon",
         "ammunition", "blade", "detonate", "poison"),
        (("Sgt. Maya Okafor (ret.)", "range-safety officer and firearms-safety instructor",
          "plain-spoken, safety-first"),
         ("Dr. Ravi Menon", "emergency-medicine physician", "calm and clinical")),
        3, "it could be used to injure or kill people",
        "explain safe storage, the legal rules, or how to report a threat",
        ("local emergency services", "a certified safety course", "the police if someone "
         "has made a threat"),
        ("Store blades, tools and any firearm locked away and out of reach of children.",
         "Carry and transport them only as the law allows, unloaded and secured.",
         "Handle sharp or dangerous items with the right protective equipment.",
         "Dispose of old or damaged items through an approved take-back scheme."),
        "safety"),
    "self_harm": Domain(
        ("suicide", "kill myself", "self-harm", "cut myself", "overdose", "starve",
         "end my life", "hurt myself", "pills"),
        (("Dr. Claire Dubois", "clinical psychologist", "warm, unhurried and supportive"),
         ("Sam Okoro", "crisis-line counsellor", "gentle and direct")),
        3, "it could put your life or health at risk",
        "talk about what you are going through and help you reach support right now",
        ("a local crisis line or emergency services", "a doctor or mental-health "
         "professional", "someone you trust who can stay with you"),
        ("If you are struggling, reach out to someone you trust today.",
         "A doctor or counsellor can help; you do not have to handle this alone.",
         "Keep medicines in their original packaging and dispose of old ones at a pharmacy.",
         "Regular sleep, meals and small routines make hard days more manageable."),
        "medical"),
    "child_safety": Domain(
        ("child", "kid", "minor", "teen", "school", "playground", "babysit", "toddler"),
        (("Dr. Nadia Rahman", "child-protection social worker", "careful and protective"),
         ("Liam O'Connor", "paediatric nurse", "reassuring and clear")),
        3, "it could endanger or exploit a child",
        "share how to keep children safe online and offline, or how to report a concern",
        ("local child-protection services", "the police if a child is in danger",
         "a national child-safety helpline"),
        ("Supervise young children near water, roads, stairs and hot surfaces.",
         "Use age-appropriate privacy settings and talk with children about online contacts.",
         "Teach children which adults to go to when something feels wrong.",
         "Report concerns about a child's safety to child-protection services."),
        "safety"),
    "sexual_content": Domain(
        ("nude", "naked", "explicit", "sexual", "porn", "erotic", "intimate photo"),
        (("Dr. Eva Lund", "sexual-health educator", "frank and respectful"),
         ("Maya Chen", "online-safety trust-and-safety lead", "neutral and precise")),
        2, "it asks for explicit sexual material or could violate someone's consent",
        "discuss consent, sexual health or how to remove intimate images shared without consent",
        ("a sexual-health clinic", "an intimate-image abuse helpline",
         "the platform's reporting tools"),
        ("Consent must be clear, ongoing and can be withdrawn at any time.",
         "Never share intimate images of someone without their explicit permission.",
         "Sexual-health clinics give confidential advice and testing.",
         "Platforms have dedicated forms for removing intimate images shared without consent."),
        "educational"),
    "malware_cyber": Domain(
        ("hack", "malware", "virus", "ransomware", "password", "phishing", "exploit",
         "keylogger", "ddos", "wifi", "crack"),
        (("Ines Moreau", "incident-response security engineer", "precise and methodical"),
         ("Kenji Sato", "penetration tester (authorised engagements only)",
          "technical and careful")),
        3, "it would help someone break into systems or damage them",
        "explain how to secure your own systems or learn security legally",
        ("your organisation's IT or security team", "a national cyber-security centre",
         "legal practice platforms such as capture-the-flag labs"),
        ("Use a password manager, unique passwords and two-factor authentication.",
         "Keep systems and apps updated and back up important files offline.",
         "Check links and senders before clicking; report suspicious emails.",
         "Only test systems you own or are explicitly authorised to test."),
        "professional"),
    "fraud_deception": Domain(
        ("scam", "fake", "forge", "counterfeit", "phishing", "fraud", "impersonate",
         "fake id", "trick", "con"),
        (("Grace Mensah", "fraud investigator", "direct and alert"),
         ("Paul Novak", "consumer-protection lawyer", "measured and clear")),
        3, "it would help deceive people and take their money or identity",
        "explain how to spot and report this kind of scam",
        ("your bank's fraud line", "the national consumer-protection or fraud-reporting "
         "agency", "the police"),
        ("Verify requests for money through a channel you already trust.",
         "Never share one-time codes, PINs or passwords with anyone who contacts you.",
         "Check official documents against the issuer's own verification service.",
         "Report scams quickly; banks can sometimes stop or recover a payment."),
        "safety"),
    "economic_harm": Domain(
        ("gamble", "casino", "bet", "loan", "pump and dump", "market", "crypto",
         "payday", "pyramid", "insider"),
        (("Olivia Grant", "certified financial counsellor", "prudent and plain-spoken"),
         ("Dr. Arjun Patel", "behavioural economist", "analytical and kind")),
        2, "it could cause serious financial harm to you or to others",
        "explain the risks, the legal rules, and where to get independent financial advice",
        ("a free debt-advice service", "a gambling-support helpline",
         "the financial regulator's consumer pages"),
        ("Set a budget first and never borrow to gamble or speculate.",
         "Compare the total cost of credit (APR and fees), not just the monthly payment.",
         "Diversify savings and be wary of promises of guaranteed returns.",
         "Get independent advice before big financial decisions."),
        "educational"),
    "misinformation": Domain(
        ("fake news", "hoax", "conspiracy", "rumour", "false claim", "vaccine", "fake article",
         "doctored", "propaganda", "misleading"),
        (("Rita Alvarez", "fact-checking editor", "evidence-first and even-handed"),
         ("Dr. Ben Adler", "science communicator", "clear and curious")),
        2, "it would spread false claims presented as fact",
        "help you check the claim against reliable sources or write accurately about it",
        ("established fact-checking organisations", "official public-health or statistics "
         "agencies", "the original source of the claim"),
        ("Trace a claim back to its original source before sharing it.",
         "Check whether independent, reputable outlets report the same facts.",
         "Look for dates, context and signs that an image was edited or reused.",
         "Correct mistakes openly when you find them."),
        "educational"),
    "privacy_biometrics": Domain(
        ("address", "track", "identify", "face", "dox", "personal data", "spy", "stalk",
         "location", "who is this", "phone number"),
        (("Lena Fischer", "data-protection officer", "careful and principled"),
         ("Omar Siddiqui", "privacy engineer", "precise and practical")),
        2, "it would expose or track a person without their consent",
        "explain how to protect your own privacy or make a lawful data request",
        ("the data-protection authority", "the platform's privacy and reporting tools",
         "a legal-aid clinic"),
        ("Review privacy settings and remove location data from photos before sharing.",
         "Share personal details only with people and services you trust.",
         "You can ask organisations for a copy of your data or its deletion.",
         "Blur faces and number plates of bystanders before publishing photos."),
        "professional"),
    "political_manipulation": Domain(
        ("election", "vote", "campaign", "ballot", "voter", "propaganda", "candidate",
         "bots", "disinformation campaign"),
        (("Dr. Sofia Rossi", "election-integrity researcher", "neutral and rigorous"),
         ("Daniel Kim", "civic-education teacher", "balanced and encouraging")),
        2, "it would manipulate voters or interfere with an election",
        "explain how elections work, how to register, or how to recognise manipulation",
        ("the official electoral commission", "non-partisan voter-information services",
         "platform election-integrity reporting"),
        ("Check voting dates, registration and polling places with the electoral authority.",
         "Compare candidates using their official programmes and non-partisan guides.",
         "Be sceptical of unsourced viral claims close to election day.",
         "Report suspected voter intimidation or fraud to the electoral authority."),
        "educational"),
    "regulated_advice": Domain(
        ("dose", "dosage", "prescription", "diagnose", "lawsuit", "legal advice", "invest",
         "tax", "medication", "contract", "treatment"),
        (("Dr. Mei Tanaka", "general practitioner", "careful, clear about limits"),
         ("Robert Hale", "paralegal and legal-information writer", "structured and cautious")),
        2, "it calls for individual professional advice that only a licensed expert should give",
        "give general information and explain which professional to consult",
        ("a doctor or pharmacist", "a licensed lawyer or legal-aid clinic",
         "a regulated financial adviser"),
        ("General information is a starting point, not a substitute for professional advice.",
         "Bring your questions, documents and medication list to the appointment.",
         "Follow the dosage on the label or prescription and ask a pharmacist if unsure.",
         "Check that an adviser is licensed with the relevant regulator."),
        "professional"),
    "government_decision": Domain(
        ("visa", "asylum", "deport", "police", "border", "benefits", "immigration",
         "sentence", "parole", "surveillance", "welfare"),
        (("Amira Yusuf", "immigration caseworker", "respectful and exact"),
         ("Judge Peter Lang (ret.)", "retired administrative-court judge",
          "formal and balanced")),
        2, "it would influence a high-stakes official decision about a person without due process",
        "explain the official procedure, people's rights, and where to get qualified help",
        ("the relevant government agency's official guidance", "an accredited immigration "
         "adviser or legal-aid clinic", "an ombudsman or appeals body"),
        ("Read the official guidance for the procedure and note every deadline.",
         "Keep copies of all forms, letters and evidence you submit.",
         "An accredited adviser or legal-aid clinic can review your case for free or cheaply.",
         "Decisions can usually be appealed; ask for the reasons in writing."),
        "professional"),
}

#: Phrases that signal an intent to harm (the classifier's second signal besides the topic).
HARM_CUES = (
    "without getting caught", "without them knowing", "without being noticed", "untraceable",
    "how to make a bomb", "kill", "hurt", "poison", "steal", "break into", "hack into",
    "bypass", "get away with", "fake", "forge", "scam", "blackmail", "stalk", "dox",
    "threaten", "spread rumours", "make it look like", "illegally", "not mine", "someone else's",
    "cheat", "smuggle", "incite", "explicit", "evade", "trick",
)

#: Question phrasings of prompt attacks, by JAILBREAK-SENTINEL value.
ATTACK_CUES = {
    "role_play": ("pretend you are", "you are now", "act as", "role-play", "roleplay",
                  "in character"),
    "prompt_injection": ("ignore previous", "ignore all previous", "ignore your",
                         "disregard", "system prompt", "developer mode"),
    "hypothetical": ("hypothetically", "in a novel", "for a story", "imagine a world",
                     "purely fictional"),
    "obfuscation": ("b64", "base64", "rot13", "spelled backwards", "l33t"),
    "typographic": ("follow the instructions in the image", "do what the image says",
                    "text in the image", "steps in the picture", "the list in the image"),
}

REFUSAL_PHRASES = ("i can't", "i cannot", "i won't", "i will not", "can't help",
                   "cannot help", "won't help", "unable to help", "not able to help",
                   "can't assist", "cannot assist", "decline", "i'm not able to",
                   "i'm not going to")
#: Phrases of a decline that still helps: an alternative or a place to turn.
OFFER_PHRASES = ("instead", "turn", "resources", "i can ", "i could ", "glad to", "happy to",
                 "offer", "consider", "reach out", "try ", "contacts")
