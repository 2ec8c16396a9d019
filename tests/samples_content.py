"""The bundled sample documents: a small fictional company, Larkspur Analytics.

Written for Citadel; every fact in them is invented. `python -m tests.docgen samples`
writes them; `make demo` ingests them.
"""

from __future__ import annotations

from pathlib import Path

from tests.docgen import write_docx, write_eml, write_pdf, write_pptx, write_xlsx

HANDBOOK = """# Larkspur Analytics Employee Handbook

Welcome to Larkspur Analytics. This handbook explains how we work together. It applies to
every employee in the Lyon, Paris and Berlin offices.

## Working hours

Our core hours are 10:00 to 15:00, Monday to Friday. Outside core hours you organise your
day freely, as long as your team knows when to reach you. A full-time week is 37.5 hours.

## Remote work

You may work remotely up to three days a week. Agree the days with your manager and record
them in Beacon, our HR portal, before the start of each month. Working from another country
for more than ten days a year needs written approval from HR.

## Leave

Full-time employees receive 25 days of paid annual leave per calendar year. Up to five
unused days can be carried over; carried-over days expire on 31 March of the following
year. Request leave in Beacon at least two weeks in advance for absences longer than three
days.

## Expenses

Submit expense claims in Ledgerly within 30 days of the expense, with a photo of each
receipt. Claims above 500 EUR need your manager's approval before the purchase. See the
Travel and Expenses Policy for travel costs and daily allowances.

## IT and security

Report any suspicious e-mail with the "Report phishing" button or by writing to
security@larkspur.example. Never share your password, not even with the IT team. The
Information Security Policy sets the rules for passwords, laptops and incidents.
"""

FAQ_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Larkspur IT FAQ</title></head>
<body>
<h1>IT help desk: frequently asked questions</h1>
<h2>How do I reset my password?</h2>
<p>Open <b>id.larkspur.example</b>, choose "Forgot password" and confirm with your
authenticator app. If you lost your phone, call the help desk on extension 4242.</p>
<h2>Where do I pick up a new laptop?</h2>
<p>New and replacement laptops are handed out at the IT desk, room 2.14 on the second floor
of the Lyon office, Tuesday and Thursday from 09:30 to 12:00.</p>
<h2>Can I install my own software?</h2>
<p>Software from the Larkspur Software Center can be installed without approval. Anything
else needs a ticket; the security team reviews it within two working days.</p>
<h2>Which VPN do we use?</h2>
<p>We use WireGuard through the Larkspur Connect app. It starts automatically when you log
in outside an office network.</p>
</body></html>
"""

SECURITY_PAGES = [
    [
        "## Larkspur Analytics - Information Security Policy",
        "Version 3.2, approved by the management board on 14 September 2026.",
        "",
        "## 1. Purpose and scope",
        "This policy protects the information entrusted to Larkspur Analytics by its",
        "clients and employees. It applies to every employee, contractor and intern,",
        "on every device used for Larkspur work.",
        "",
        "## 2. Passwords and authentication",
        "Passwords must be at least 14 characters long. Multi-factor authentication is",
        "required for e-mail, the VPN and every client system. Passwords are changed only",
        "when there is a reason to believe they are compromised, never on a fixed schedule.",
    ],
    [
        "## 3. Data classification",
        "Every document is classified as Public, Internal, Confidential or Restricted.",
        "Restricted data (client personal data, salaries, security keys) may only be stored",
        "in the Vault workspace and must never be sent by e-mail.",
        "",
        "## 4. Laptops and mobile devices",
        "Laptops use full-disk encryption and lock the screen after 5 minutes of inactivity.",
        "A lost or stolen device must be reported within one hour.",
    ],
    [
        "## 5. Reporting a security incident",
        "Report any suspected incident to the security team within one hour, by phone on",
        "+33 4 00 00 42 42 or by writing to security@larkspur.example. Do not try to",
        "investigate on your own and do not switch off an affected machine.",
        "",
        "## 6. Review",
        "The Chief Information Security Officer, Amina Diallo, reviews this policy every year.",
    ],
]


def build_samples(folder: Path) -> None:
    (folder / "policies").mkdir(parents=True, exist_ok=True)
    (folder / "it").mkdir(exist_ok=True)
    (folder / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    (folder / "it" / "faq.html").write_text(FAQ_HTML, encoding="utf-8")
    write_pdf(folder / "policies" / "information-security-policy.pdf", SECURITY_PAGES)
    write_docx(
        folder / "policies" / "travel-and-expenses.docx",
        [
            ("h1", "Travel and Expenses Policy"),
            ("p", "This policy applies to every business trip booked for Larkspur Analytics."),
            ("h2", "Booking travel"),
            (
                "p",
                "Book every trip through the travel desk at travel@larkspur.example at least "
                "ten days before departure. Trains are preferred for journeys under four "
                "hours.",
            ),
            ("h2", "Class of travel"),
            ("li", "Flights under six hours: economy class."),
            ("li", "Flights of six hours or more: premium economy."),
            ("li", "Trains: second class, or first class when it costs less than 20% more."),
            ("h2", "Daily allowances"),
            (
                "p",
                "Hotel costs are reimbursed up to the cap below; meals are covered by a "
                "daily allowance, without receipts.",
            ),
        ],
        table=[
            ["City", "Hotel cap per night (EUR)", "Meal allowance per day (EUR)"],
            ["London", "220", "60"],
            ["Paris", "190", "55"],
            ["Berlin", "160", "45"],
            ["Lyon", "120", "40"],
        ],
    )
    write_pptx(
        folder / "onboarding-deck.pptx",
        [
            (
                "Welcome to Larkspur Analytics",
                ["Onboarding session for new employees", "Data analytics for retailers since 2014"],
            ),
            (
                "Your first week",
                [
                    "Day 1: pick up your laptop at the IT desk, room 2.14",
                    "Day 2: security awareness training (mandatory)",
                    "Day 3: meet your buddy and your team's clients",
                    "Day 5: first one-to-one with your manager",
                ],
            ),
            (
                "Tools we use",
                [
                    "Beacon: leave, remote days and payslips",
                    "Ledgerly: expense claims",
                    "Larkspur Connect: the VPN",
                    "Citadel: ask our documents",
                ],
            ),
            (
                "Who to ask",
                [
                    "HR questions: people@larkspur.example",
                    "IT help desk: extension 4242",
                    "Security incidents: security@larkspur.example, within one hour",
                ],
            ),
        ],
    )
    write_xlsx(
        folder / "it" / "equipment-budget.xlsx",
        {
            "Laptops": [
                ["Role", "Standard laptop", "Budget (EUR)", "Refresh cycle (years)"],
                ["Data analyst", "ThinkPad T14 32 GB", 1650, 4],
                ["Data engineer", "ThinkPad P14s 64 GB", 2300, 4],
                ["Consultant", "ThinkPad X1 Carbon", 1900, 3],
                ["Office manager", "ThinkPad E14", 950, 5],
            ],
            "Accessories": [
                ["Item", "Allowance (EUR)", "Approval"],
                ["Second monitor", 250, "none"],
                ["Headset", 120, "none"],
                ["Home office chair", 400, "manager"],
            ],
        },
    )
    write_eml(
        folder / "office-closure-2026.eml",
        subject="Office closure over the holidays",
        sender="Camille Martin <people@larkspur.example>",
        to="all-staff@larkspur.example",
        body=(
            "Hello everyone,\n\n"
            "All Larkspur offices will be closed from 24 December 2026 to 1 January 2027 "
            "inclusive. The office reopens on Monday 4 January 2027.\n\n"
            "During the closure the IT on-call engineer can be reached on +33 4 00 00 99 99 "
            "for outages of client-facing systems only.\n\n"
            "Happy holidays,\nCamille Martin, People team\n"
        ),
    )
    (folder / "offices.csv").write_text(
        "City,Address,Desks,Site lead\n"
        "Lyon,12 rue de la Charité,80,Julien Moreau\n"
        "Paris,5 avenue Parmentier,45,Sofia Rossi\n"
        "Berlin,Torstraße 140,30,Jonas Weber\n",
        encoding="utf-8",
    )
