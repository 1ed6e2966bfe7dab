#!/usr/bin/env python3
"""Benign API traffic for `make eval`: realistic values an attack detection must let through.

Writes N records (default 20,000) as JSON Lines, one `{"kind": ..., "value": ...}` a line, with a fixed seed so two
runs write the same file. The `eval_attacks` example sends every value in every placement (query value, form field,
JSON string, header value, path segment, XML text) and counts the requests on which any attack class fires; a
`json_document` value is also sent as the JSON body itself.

The values come from Faker (PyPI) in several locales, so names carry apostrophes and accents (O'Brien, D'Angelo,
Lefèvre), and from small templates that put everyday words which also happen to be code words into prose
("select a plan", "drop-down", "union station", "insert coin"): what real users type, not attack look-alikes
copied from any corpus.

    .venv/bin/python scripts/benign-traffic.py [--count N] [--seed S] [--out target/eval/benign-traffic.jsonl]
"""

import argparse
import datetime
import json
import os
import random
import sys

try:
    from faker import Faker
except ImportError:
    sys.exit("benign-traffic.py needs Faker: .venv/bin/pip install faker (make eval installs the pinned version)")

# Fixed bounds: Faker's defaults are relative to today, and the file must not change from one day to the next.
EARLIEST = datetime.datetime(1995, 1, 1)
LATEST = datetime.datetime(2027, 12, 31)

LOCALES = ["en_US", "en_GB", "en_IE", "fr_FR", "de_DE", "es_ES", "it_IT", "nl_NL", "pt_BR"]

# Everyday words that are also SQL, shell or HTML words: users type them in searches, reviews and notes.
CODE_ISH = [
    "select a plan", "drop-down menu", "union station", "insert coin", "update my address", "delete my account",
    "order by price", "where is my order", "table for two", "join the club", "group by size", "exec summary",
    "script for the play", "alert settings", "sleep mode", "echo dot", "cat food", "ls 400 lexus", "bash party",
    "ping pong table", "curl cream", "wget ready", "python book", "java coffee", "null and void", "true or false",
    "from 1 to 10", "rock & roll", "salt & pepper", "terms & conditions", "50% off", "2 for 1", "R&D budget",
    "C# course", "C++ primer", "node.js tutorial", "e-mail address", "100% cotton", "A+ rating", "5 < 10",
    "x > y", "let's go", "can't log in", "what's new", "it's broken", "isn't working", "you're welcome",
]

PRODUCTS = ["headphones", "desk lamp", "running shoes", "coffee grinder", "backpack", "phone case", "keyboard",
            "water bottle", "yoga mat", "frying pan", "monitor stand", "rain jacket"]

REVIEW_TEMPLATES = [
    "I bought the {p} last {month} and it's {adj}. {sentence}",
    "{stars}/5 - the {p} doesn't fit my {thing}, but customer service was {adj}!",
    "Honestly? Best {p} I've owned. Worth every {currency}{price}.",
    "Returned it: the {p} arrived broken (box was crushed) -- {sentence}",
    "\"{adj}\" is the word. My {relative}'s {p} lasted 3 years; mine, 3 weeks...",
    "Pros: light, cheap; cons: the strap's too short. Would I buy again? Maybe.",
]

MARKDOWN_TEMPLATES = [
    "# {title}\n\n{paragraph}",
    "## Steps\n1. Open *Settings*\n2. Click **{word}**\n3. Choose `{word2}` from the drop-down",
    "- [ ] {sentence}\n- [x] {sentence2}",
    "See [the docs]({url}) for details, or email {email}.",
    "> {sentence}\n\n_{name}_",
    "Use `{file}` and run it with `--verbose`; it's in the `{word}` folder.",
]


def record(fake, rng):
    """One benign value and its kind."""
    kind = rng.choice(KINDS)
    return kind, GENERATORS[kind](fake, rng)


def price(fake, rng):
    amount = rng.uniform(0.5, 5000)
    return rng.choice([
        f"${amount:,.2f}", f"{amount:.2f} EUR", f"€{amount:.2f}".replace(".", ","), f"£{amount:.0f}",
        f"{amount:.2f}", f"USD {amount:,.2f}", f"{rng.randint(1, 99)}.99",
    ])


def identifier(fake, rng):
    return rng.choice([
        fake.uuid4(), str(rng.randint(1, 10**9)), f"SKU-{rng.randint(10000, 99999)}", fake.ean13(),
        fake.sha1()[:16], f"ord_{fake.pystr(min_chars=12, max_chars=12)}", fake.isbn13(), fake.bothify("??-####-??"),
        f"{rng.randint(1, 999)}-{rng.randint(1000, 9999)}", fake.license_plate(), fake.iban(),
    ])


def url(fake, rng):
    base = rng.choice([fake.url(), fake.uri(), fake.image_url()])
    if rng.random() < 0.5:
        params = "&".join(f"{fake.word()}={fake.word()}" for _ in range(rng.randint(1, 3)))
        base = f"{base.rstrip('/')}/?{params}"
    if rng.random() < 0.2:
        base += f"#{fake.word()}"
    return base


def date(fake, rng):
    d = fake.date_time_between(start_date=EARLIEST, end_date=LATEST)
    return rng.choice([
        d.isoformat(), d.strftime("%Y-%m-%d"), d.strftime("%d/%m/%Y"), d.strftime("%B %d, %Y"),
        d.strftime("%a, %d %b %Y %H:%M:%S GMT"), d.strftime("%m-%d-%y %I:%M %p"), str(int(d.timestamp())),
    ])


def free_text(fake, rng):
    parts = [fake.sentence(nb_words=rng.randint(4, 14))]
    if rng.random() < 0.6:
        parts.append(rng.choice([
            f"I'd like to {rng.choice(CODE_ISH)}, please.", f"My name's {fake.name()} - it's urgent!",
            f"Can't {rng.choice(['pay', 'log in', 'reset my password'])}; tried twice (error {rng.randint(100, 599)}).",
            f"Ship to {fake.city()}; it's for {fake.first_name()}'s birthday :)", fake.paragraph(nb_sentences=2),
            f"Re: \"{fake.catch_phrase()}\" -- see attached ({fake.file_name()}).",
        ]))
    rng.shuffle(parts)
    return " ".join(parts)


def search_query(fake, rng):
    return rng.choice([
        rng.choice(CODE_ISH), f"{fake.word()} {fake.word()}", f"\"{fake.catch_phrase()}\"",
        f"{rng.choice(PRODUCTS)} under {rng.randint(10, 500)}", f"{fake.city()} hotels", f"{fake.company()} jobs",
        f"{rng.choice(CODE_ISH)} {fake.word()}", f"how to {fake.bs()}", f"{fake.word()} -{fake.word()}",
        f"{rng.choice(PRODUCTS)} OR {rng.choice(PRODUCTS)}", f"site:{fake.domain_name()} {fake.word()}",
    ])


def review(fake, rng):
    return rng.choice(REVIEW_TEMPLATES).format(
        p=rng.choice(PRODUCTS), month=fake.month_name(), adj=rng.choice(["great", "awful", "fine", "so-so", "superb"]),
        sentence=fake.sentence(), stars=rng.randint(1, 5), thing=rng.choice(["car", "desk", "bag", "kitchen"]),
        currency=rng.choice(["$", "€", "£"]), price=rng.randint(5, 300), relative=rng.choice(["sister", "dad", "son"]),
    )


def markdown(fake, rng):
    return rng.choice(MARKDOWN_TEMPLATES).format(
        title=fake.catch_phrase(), paragraph=fake.paragraph(), word=fake.word(), word2=fake.word(),
        sentence=fake.sentence(), sentence2=fake.sentence(), url=fake.url(), email=fake.email(), name=fake.name(),
        file=fake.file_name(),
    )


def file_name(fake, rng):
    return rng.choice([
        fake.file_name(), fake.file_name(category="image"), f"{fake.word()}_{fake.date_between(EARLIEST, LATEST)}.csv",
        f"{fake.name()} - CV.pdf", f"Invoice #{rng.randint(1000, 9999)}.pdf", fake.file_path(depth=rng.randint(1, 3)),
        f"{fake.word()} (copy {rng.randint(1, 3)}).docx",
    ])


def json_document(fake, rng):
    doc = {
        "id": fake.uuid4(),
        "customer": {"name": fake.name(), "email": fake.email(), "phone": fake.phone_number(),
                     "address": {"street": fake.street_address(), "city": fake.city(), "postcode": fake.postcode(),
                                 "country": fake.country_code()}},
        "items": [{"sku": f"SKU-{rng.randint(10000, 99999)}", "name": rng.choice(PRODUCTS),
                   "qty": rng.randint(1, 5), "price": round(rng.uniform(1, 500), 2)}
                  for _ in range(rng.randint(1, 4))],
        "note": free_text(fake, rng),
        "created_at": fake.date_time_between(start_date=EARLIEST, end_date=LATEST).isoformat(),
        "tags": fake.words(nb=rng.randint(0, 4)),
        "gift": rng.random() < 0.2,
        "coupon": None,
    }
    return json.dumps(doc, ensure_ascii=rng.random() < 0.5)


GENERATORS = {
    "name": lambda fake, rng: rng.choice([fake.name(), fake.last_name(), fake.first_name(), fake.user_name()]),
    "address": lambda fake, rng: rng.choice([fake.address(), fake.street_address(), fake.city()]),
    "free_text": free_text,
    "price": price,
    "id": identifier,
    "url": url,
    "email": lambda fake, rng: rng.choice([fake.email(), fake.company_email(), fake.free_email()]),
    "date": date,
    "phone": lambda fake, rng: fake.phone_number(),
    "json_document": json_document,
    "search_query": search_query,
    "review": review,
    "markdown": markdown,
    "file_name": file_name,
    "company": lambda fake, rng: rng.choice([fake.company(), fake.job(), fake.catch_phrase()]),
    "user_agent": lambda fake, rng: fake.user_agent(),
}
KINDS = sorted(GENERATORS)


def main():
    # Some Faker providers draw from sets, whose order follows Python's per-process string hashing: pin it.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.environ["PYTHONHASHSEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000, help="how many values (default 20,000)")
    parser.add_argument("--seed", type=int, default=13, help="the fixed seed (default 13)")
    parser.add_argument("--out", default="target/eval/benign-traffic.jsonl", help="where to write them")
    args = parser.parse_args()

    Faker.seed(args.seed)
    rng = random.Random(args.seed)
    fakes = [Faker(locale) for locale in LOCALES]
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as out:
        for _ in range(args.count):
            kind, value = record(rng.choice(fakes), rng)
            out.write(json.dumps({"kind": kind, "value": value}, ensure_ascii=False) + "\n")
    print(f"benign-traffic.py: {args.count} values in {args.out} (seed {args.seed})")


if __name__ == "__main__":
    main()
