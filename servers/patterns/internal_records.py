"""Notebook 07: the bank's internal records, a small SQLite database the retrieval worker investigates.

The database is generated, not shipped: :func:`open_records` builds it at first use from a seed (the same seed
gives the same companies, accounts and transactions, byte for byte, on every machine) into the file
``LAB_INTERNAL_DB`` names, else ``<LAB_STATE_DIR>/internal-records/records-<seed>.sqlite``. It is never committed.
Several processes may open it at once: the first builds it in a temporary file and moves it into place.

What is in it: about thirty companies with ordinary business (payments to suppliers, salaries, customers paying
in), and TechCorp, into whose books three patterns a fraud analyst looks for are planted:

* **structuring**: many transfers just under the 10,000 USD reporting threshold to one offshore company;
* **round-tripping**: money sent to a trading company abroad and coming back within days, nearly in full;
* **a dormant account woken up**: an account silent for a year that moves a million in a fortnight.

The retrieval worker finds them with the SQL queries of :data:`CHECKS` (:func:`run_check`), which run on every
company alike: a finding is a query result, with its rows as evidence, never a sentence written in advance. The
external bank (``servers/bank_service.py``) answers from the same generated world what only it knows: who owns
the accounts TechCorp paid (:func:`bank_records`).

AWS counterpart: an internal database the agent reaches from its microVM (Amazon RDS or Aurora through a VPC
network configuration, or Athena over a data lake), with the runtime's role allowed to query it. On AWS, set
``LAB_INTERNAL_DB`` to a path under ``/tmp`` (the only writable place of a microVM): each session generates its
own copy at first use, the same data every time.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

#: The seed of the lessons' world, and the company whose books hold the planted patterns.
DEFAULT_SEED = 7
SUSPECT = "TechCorp"
#: Transfers at or above this amount must be reported (the threshold structuring stays under).
REPORTING_THRESHOLD = 10_000.0
#: Jurisdictions the checks treat as high risk (ISO country codes).
HIGH_RISK = ("KY", "VG", "PA", "SC", "AE")
PERIOD_START, PERIOD_END = date(2024, 1, 1), date(2024, 6, 30)

SCHEMA = """
CREATE TABLE companies (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, country TEXT NOT NULL,
                        industry TEXT NOT NULL, director TEXT NOT NULL);
CREATE TABLE accounts (id TEXT PRIMARY KEY, company_id INTEGER NOT NULL REFERENCES companies(id),
                       currency TEXT NOT NULL, opened TEXT NOT NULL);
CREATE TABLE transactions (id INTEGER PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
                           booked TEXT NOT NULL, amount REAL NOT NULL,  -- negative: money out
                           counterparty TEXT NOT NULL, counterparty_country TEXT NOT NULL,
                           counterparty_account TEXT NOT NULL, reference TEXT NOT NULL);
CREATE TABLE beneficial_owners (account TEXT PRIMARY KEY, holder TEXT NOT NULL, country TEXT NOT NULL,
                                owner TEXT NOT NULL);
CREATE INDEX transactions_by_account ON transactions (account_id, booked);
"""

_COMPANY_WORDS = ("Acme", "Borealis", "Cobalt", "Delta", "Evergreen", "Falcon", "Granite", "Harbor", "Ion",
                  "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Orchid", "Pioneer", "Quartz", "Riverstone",
                  "Summit", "Tidewater", "Umbra", "Vertex", "Willow", "Xenon", "Yarrow", "Zephyr", "Atlas", "Beacon",
                  "Cedar", "Dune")
_SUFFIXES = ("Industries", "Logistics", "Foods", "Systems", "Retail", "Energy", "Labs", "Partners")
_INDUSTRIES = ("manufacturing", "logistics", "food", "software", "retail", "energy", "biotech", "consulting")
_FIRST = ("Alex", "Maria", "Chen", "Priya", "Jonas", "Fatima", "Lucas", "Sofia", "Omar", "Elena", "Kenji", "Grace")
_LAST = ("Garcia", "Novak", "Okafor", "Lindqvist", "Tanaka", "Rossi", "Haddad", "Murphy", "Silva", "Kowalski")
_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA", "JP", "SE")
_SUPPLIERS = ("Northern Steel Co", "Bright Paper Ltd", "Metro Freight", "Cloudline Hosting", "Green Valley Farms",
              "Orbit Components", "Clearwater Utilities", "Prime Office Supply", "Swift Couriers", "Atlas Insurance")


@dataclass(frozen=True)
class Check:
    """One thing a fraud analyst looks for: a title, the SQL that finds it for one company, how to say a row."""

    name: str
    title: str
    sql: str  # takes :company; every row it returns is evidence
    sentence: Callable[[str, list[dict[str, Any]]], str] = field(repr=False)


def _money(amount: float) -> str:
    return f"{amount:,.0f} USD"


CHECKS: tuple[Check, ...] = (
    Check("structuring", "transfers just under the reporting threshold", f"""
        SELECT t.counterparty, t.counterparty_country AS country, t.counterparty_account AS account,
               COUNT(*) AS transfers, ROUND(-SUM(t.amount), 2) AS total, MIN(t.booked) AS first, MAX(t.booked) AS last
        FROM transactions t JOIN accounts a ON a.id = t.account_id JOIN companies c ON c.id = a.company_id
        WHERE c.name = :company AND -t.amount >= {REPORTING_THRESHOLD * 0.9} AND -t.amount < {REPORTING_THRESHOLD}
        GROUP BY t.counterparty_account HAVING COUNT(*) >= 5 ORDER BY total DESC""",
          lambda company, rows: "; ".join(
              f"{company} sent {r['transfers']} transfers just under {_money(REPORTING_THRESHOLD)} "
              f"({_money(r['total'])} in all, {r['first']} to {r['last']}) to {r['counterparty']} ({r['country']}, "
              f"account {r['account']})" for r in rows) + "."),
    Check("round_trips", "money sent abroad that came back within days", """
        SELECT o.counterparty, o.counterparty_country AS country, o.booked AS sent_on, -o.amount AS sent,
               i.booked AS back_on, i.amount AS back
        FROM transactions o JOIN accounts a ON a.id = o.account_id JOIN companies c ON c.id = a.company_id
        JOIN transactions i ON i.account_id IN (SELECT id FROM accounts WHERE company_id = c.id)
             AND i.counterparty_account = o.counterparty_account AND i.amount > 0
             AND julianday(i.booked) - julianday(o.booked) BETWEEN 1 AND 7 AND i.amount >= -o.amount * 0.9
        WHERE c.name = :company AND o.amount <= -50000 ORDER BY o.booked""",
          lambda company, rows: f"{company} sent {_money(sum(r['sent'] for r in rows))} to "
          f"{', '.join(sorted({r['counterparty'] for r in rows}))} in {len(rows)} transfers, and "
          f"{_money(sum(r['back'] for r in rows))} came back from it within a week each time."),
    Check("dormant_account", "a dormant account suddenly moving large sums", """
        SELECT t.account_id AS account, a.opened, COUNT(*) AS transactions, ROUND(SUM(ABS(t.amount)), 2) AS moved,
               MIN(t.booked) AS first, MAX(t.booked) AS last,
               (SELECT MAX(p.booked) FROM transactions p WHERE p.account_id = t.account_id
                AND p.booked < date(MIN(t.booked), '-30 days')) AS previous
        FROM transactions t JOIN accounts a ON a.id = t.account_id JOIN companies c ON c.id = a.company_id
        WHERE c.name = :company AND a.opened < '2023-01-01'
        GROUP BY t.account_id
        HAVING (previous IS NULL OR julianday(MIN(t.booked)) - julianday(previous) > 180)
           AND SUM(ABS(t.amount)) > 500000 AND julianday(MAX(t.booked)) - julianday(MIN(t.booked)) <= 30""",
          lambda company, rows: "; ".join(
              f"{company}'s account {r['account']} (opened {r['opened']}) lay dormant until "
              f"{r['first']}, then moved {_money(r['moved'])} in {r['transactions']} transactions by {r['last']}"
              for r in rows) + "."),
    Check("high_risk_jurisdictions", "payments to high-risk jurisdictions", f"""
        SELECT t.counterparty_country AS country, COUNT(*) AS transfers, ROUND(-SUM(t.amount), 2) AS total
        FROM transactions t JOIN accounts a ON a.id = t.account_id JOIN companies c ON c.id = a.company_id
        WHERE c.name = :company AND t.amount < 0
          AND t.counterparty_country IN ({", ".join(f"'{c}'" for c in HIGH_RISK)})
        GROUP BY t.counterparty_country HAVING -SUM(t.amount) > 100000 ORDER BY total DESC""",
          lambda company, rows: f"{company} paid " + ", ".join(
              f"{_money(r['total'])} in {r['transfers']} transfers to {r['country']}" for r in rows)
          + " (high-risk jurisdictions)."),
)


def database_path(seed: int = DEFAULT_SEED) -> Path:
    """Where the records of ``seed`` live: ``LAB_INTERNAL_DB``, else under ``LAB_STATE_DIR`` (see the docstring)."""
    named = os.environ.get("LAB_INTERNAL_DB", "").strip()
    if named:
        return Path(named)
    from lab_helpers import config  # plumbing: where build/state is

    return Path(config.load().state_dir) / "internal-records" / f"records-{seed}.sqlite"


def open_records(path: Path | str | None = None, seed: int = DEFAULT_SEED) -> sqlite3.Connection:
    """A read-only connection to the records (generated from ``seed`` first, if the file is not there yet)."""
    path = Path(path) if path is not None else database_path(seed)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        os.close(handle)
        try:
            with sqlite3.connect(temporary) as db:
                generate(db, seed)
            db.close()
            os.replace(temporary, path)  # atomic: a reader never sees half a database; a second builder's copy wins
        finally:
            Path(temporary).unlink(missing_ok=True)
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    return db


def _day(rng: random.Random, start: date = PERIOD_START, end: date = PERIOD_END) -> str:
    return (start + timedelta(days=rng.randrange((end - start).days + 1))).isoformat()


def _iban(rng: random.Random, country: str, bank: str) -> str:
    return f"{country}{rng.randrange(10, 99)}{bank}{rng.randrange(10**11, 10**12)}"


@dataclass
class _World:
    """What generation builds before it goes into the database."""

    accounts: dict[str, list[str]] = field(default_factory=dict)  # company -> its account ids, main first
    directors: dict[str, str] = field(default_factory=dict)  # company -> its director
    transactions: list[tuple[Any, ...]] = field(default_factory=list)
    owners: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # account -> holder, country, owner


def generate(db: sqlite3.Connection, seed: int = DEFAULT_SEED) -> None:
    """Fill an empty database with the world of ``seed``: ordinary companies, and TechCorp's planted patterns."""
    rng = random.Random(seed)
    db.executescript(SCHEMA)
    world = _ordinary_business(db, rng)
    _plant_patterns(world, rng)
    world.transactions.sort(key=lambda row: (row[1], row[0], row[2]))
    db.executemany("INSERT INTO transactions (account_id, booked, amount, counterparty, counterparty_country,"
                   " counterparty_account, reference) VALUES (?,?,?,?,?,?,?)", world.transactions)
    db.executemany("INSERT INTO beneficial_owners VALUES (?,?,?,?)",
                   [(account, *owner) for account, owner in world.owners.items()])


def _ordinary_business(db: sqlite3.Connection, rng: random.Random) -> _World:
    """Thirty companies (TechCorp first), their accounts, and a year of ordinary payments in and out."""
    world = _World()
    names = [SUSPECT] + sorted({f"{rng.choice(_COMPANY_WORDS)} {rng.choice(_SUFFIXES)}" for _ in range(40)})[:29]
    for number, name in enumerate(names, start=1):
        country = "US" if name == SUSPECT else rng.choice(_COUNTRIES)
        director = next(d for d in (f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" for _ in iter(int, 1))
                        if d not in world.directors.values())  # one company per director: the bank names it
        world.directors[name] = director
        db.execute("INSERT INTO companies VALUES (?,?,?,?,?)",
                   (number, name, country, "software" if name == SUSPECT else rng.choice(_INDUSTRIES), director))
        for index in range(2 if name == SUSPECT else rng.randint(1, 2)):
            account = _iban(rng, "US", "LAB")
            opened = ("2019-03-14" if (name == SUSPECT and index == 1)
                      else f"{rng.randint(2015, 2023)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}")
            db.execute("INSERT INTO accounts VALUES (?,?,?,?)", (account, number, "USD", opened))
            world.accounts.setdefault(name, []).append(account)
        for _ in range(rng.randint(40, 80)):  # ordinary business, all year, every company alike
            supplier = rng.choice(_SUPPLIERS)
            out = rng.random() < 0.6
            amount = round(rng.lognormvariate(8.5, 1.0), 2)
            country = "AE" if rng.random() < 0.02 else rng.choice(_COUNTRIES)  # some honest trade with the Gulf
            world.transactions.append((world.accounts[name][0], _day(rng), -amount if out else amount,
                                       supplier if out else "Customer payments", country, _iban(rng, country, "SUP"),
                                       "invoice" if out else "receivable"))
    return world


def _plant_patterns(world: _World, rng: random.Random) -> None:
    """TechCorp's three patterns: structuring to its director's offshore company, round trips, a dormant account."""
    main, dormant = world.accounts[SUSPECT]
    lagoon, northwind = "KY84BLUE000771045", "AE070331234567890"
    world.owners[lagoon] = ("Blue Lagoon Holdings Ltd", "KY", world.directors[SUSPECT])  # the director's own
    world.owners[northwind] = ("Northwind Trading FZE", "AE", "Northwind Trading Group")
    for week in range(14):  # just under the threshold, every few days
        booked = date(2024, 3, 4) + timedelta(days=3 * week + rng.randrange(2))
        world.transactions.append((main, booked.isoformat(), -round(rng.uniform(9_400, 9_950), 2),
                                   "Blue Lagoon Holdings Ltd", "KY", lagoon, "consulting fee"))
    for sent_on, amount, back_days in ((date(2024, 4, 8), 250_000.0, 4), (date(2024, 5, 13), 180_000.0, 3)):
        world.transactions.append((main, sent_on.isoformat(), -amount, "Northwind Trading FZE", "AE", northwind,
                                   "hardware order"))
        world.transactions.append((main, (sent_on + timedelta(days=back_days)).isoformat(), round(amount * 0.97, 2),
                                   "Northwind Trading FZE", "AE", northwind, "order cancelled, refund"))
    for day in range(6):  # the dormant account wakes up in June
        booked = (date(2024, 6, 3) + timedelta(days=2 * day)).isoformat()
        world.transactions.append((dormant, booked, 210_000.0 + 1_000 * day, "Meridian Capital", "VG",
                                   "VG21MERI000004411", "loan"))
        world.transactions.append((dormant, booked, -205_000.0 - 1_000 * day, "Blue Lagoon Holdings Ltd", "KY",
                                   lagoon, "consulting fee"))


def companies(db: sqlite3.Connection) -> list[str]:
    """Every company's name, in alphabetical order."""
    return [row[0] for row in db.execute("SELECT name FROM companies ORDER BY name")]


def run_check(db: sqlite3.Connection, check: Check, company: str) -> dict[str, Any] | None:
    """Run one check for ``company``: a finding (its title, a sentence, the rows as evidence), or None if clean."""
    rows = [dict(row) for row in db.execute(check.sql, {"company": company})]
    if not rows:
        return None
    return {"check": check.name, "title": check.title, "summary": check.sentence(company, rows), "evidence": rows}


def bank_records(db: sqlite3.Connection, company: str) -> list[dict[str, Any]]:
    """What the external bank knows and the company's own records do not: who owns the accounts it paid abroad.

    One record per high-risk counterparty account the company paid: the account's holder and beneficial owner
    (from the bank's know-your-customer files), and the payments it received from the company, as that bank
    booked them.
    """
    risky = ", ".join(f"'{code}'" for code in HIGH_RISK)
    rows = db.execute(f"""
        SELECT t.counterparty_account AS account, COUNT(*) AS payments, ROUND(-SUM(t.amount), 2) AS received,
               b.holder, b.country, b.owner,
               (SELECT c2.name FROM companies c2 WHERE c2.director = b.owner) AS owner_directs
        FROM transactions t JOIN accounts a ON a.id = t.account_id JOIN companies c ON c.id = a.company_id
        JOIN beneficial_owners b ON b.account = t.counterparty_account
        WHERE c.name = :company AND t.amount < 0 AND t.counterparty_country IN ({risky})
        GROUP BY t.counterparty_account ORDER BY received DESC""", {"company": company})
    return [dict(row) for row in rows]
