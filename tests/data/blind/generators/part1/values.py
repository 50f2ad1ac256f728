"""Value generators for the part1 blind Slack data set.

Everything draws from one seeded random.Random so that make.py is reproducible.
Token charsets/lengths follow the vendors' public formats; the randomness comes
from the seeded generator (not `secrets`) so a rerun yields identical output.
"""
import base64
import json
import random
import string
import unicodedata

SEED = 1101
rng = random.Random(SEED)

ALNUM = string.ascii_letters + string.digits
UPNUM = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
HEXU = "0123456789ABCDEF"
B64 = ALNUM + "+/"
B64U = ALNUM + "-_"
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
DIG = string.digits


def rs(n, cs=ALNUM):
    return "".join(rng.choice(cs) for _ in range(n))


def dg(n, first_nonzero=False):
    s = rs(n, DIG)
    if first_nonzero and s[0] == "0":
        s = rng.choice("123456789") + s[1:]
    return s


def b64(s):
    return base64.b64encode(s.encode()).decode()


def b64url(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# ---------------------------------------------------------------- names
# Hand-written lists, grouped by origin.  order: gf = given family,
# fg = family given, fmg = family middle given (Vietnamese).
ORIGINS = {
    "yo": dict(order="gf",
               given=["Adebayo", "Oluwaseun", "Folake", "Temitope", "Babajide", "Yetunde",
                      "Olamide", "Adeola", "Ayodele", "Funmilayo", "Bọ́lá", "Kẹ́hìndé"],
               family=["Ogunleye", "Adeyemi", "Balogun", "Afolabi", "Oyelaran", "Adewale",
                       "Olatunji", "Ogundipe", "Akinwande", "Ọlátúnjí"]),
    "ig": dict(order="gf",
               given=["Chinedu", "Ngozi", "Obinna", "Chiamaka", "Ifeanyi", "Nneka", "Emeka",
                      "Uchenna", "Adaeze", "Chukwuemeka"],
               family=["Okafor", "Eze", "Nwosu", "Okonkwo", "Obi", "Nwachukwu", "Onyekachi",
                       "Chukwu", "Okeke", "Anyanwu"]),
    "vi": dict(order="fmg",
               given=["Lan", "Minh", "Hương", "Tuấn", "Thảo", "Dũng", "Linh", "Quang", "Phương",
                      "Hiếu", "Trang", "Khoa"],
               middle=["Thị", "Văn", "Đức", "Minh", "Ngọc", "Thanh", "Hoài", "Quốc"],
               family=["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Ngô"]),
    "zh": dict(order="fg|gf",
               given=["Wei", "Xiaoming", "Jing", "Hao", "Meiling", "Yun", "Zhiwei", "Lina",
                      "Jun", "Xinyi", "Yutong", "Haoran"],
               family=["Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Zhou", "Wu",
                       "Xu", "Sun", "Guo"]),
    "ko": dict(order="fg|gf",
               given=["Min-jun", "Seo-yeon", "Ji-ho", "Ha-eun", "Do-yun", "Soo-ah", "Jae-won",
                      "Hye-jin", "Sung-min", "Eun-ji"],
               family=["Kim", "Lee", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim"]),
    "pl": dict(order="gf",
               given=["Małgorzata", "Łukasz", "Agnieszka", "Paweł", "Zofia", "Wojciech",
                      "Katarzyna", "Grzegorz", "Joanna", "Michał", "Jędrzej", "Bożena"],
               female={"Małgorzata", "Agnieszka", "Zofia", "Katarzyna", "Joanna", "Bożena"},
               family=["Wiśniewski", "Kowalczyk", "Zieliński", "Wójcik", "Lewandowski",
                       "Kamiński", "Dąbrowski", "Szymański", "Woźniak", "Jabłoński", "Król"]),
    "ar": dict(order="gf",
               given=["Omar", "Layla", "Yousef", "Fatima", "Khalid", "Noor", "Tariq", "Amira",
                      "Hassan", "Rania", "Zainab", "Karim"],
               family=["Al-Farsi", "Haddad", "Mansour", "El-Sayed", "Khoury", "Al-Rashid",
                       "Nasser", "Saleh", "Hamdan", "Abdelaziz", "Al Amiri"]),
    "in": dict(order="gf",
               given=["Priya", "Arjun", "Ananya", "Rohan", "Kavya", "Vikram", "Deepika", "Sanjay",
                      "Meera", "Aditya", "Lakshmi", "Harpreet"],
               family=["Raman", "Venkataraman", "Iyer", "Sharma", "Patel", "Reddy", "Chatterjee",
                       "Nair", "Deshpande", "Gupta", "Bhattacharya", "Sandhu"]),
    "es": dict(order="gff",
               given=["María José", "Alejandro", "Lucía", "Javier", "Carmen", "Diego", "Sofía",
                      "Pablo", "Valentina", "Andrés", "Ximena", "Rodrigo"],
               family=["García", "Fernández", "Ortega", "López", "Martínez", "Ruiz", "Navarro",
                       "Domínguez", "Castillo", "Herrera", "Peña", "Iglesias"]),
    "ga": dict(order="gf",
               given=["Siobhán", "Ciarán", "Niamh", "Aoife", "Seán", "Oisín", "Caoimhe",
                      "Pádraig", "Róisín", "Declan"],
               family=["O'Sullivan", "Murphy", "MacCarthy", "Ó Briain", "Fitzgerald", "Byrne",
                       "Kavanagh", "O'Connell", "Doyle", "Ní Bhriain"]),
    "no": dict(order="gf",
               given=["Åsa", "Bjørn", "Sigrid", "Henrik", "Ingrid", "Lars", "Freya", "Magnus",
                      "Solveig", "Eero", "Astrid", "Håkon"],
               family=["Lindqvist", "Halvorsen", "Johansson", "Søndergaard", "Virtanen",
                       "Bergström", "Nyström", "Andersen", "Haugland", "Korhonen", "Ødegård"]),
    "ja": dict(order="gf|fg",
               given=["Haruto", "Yui", "Sota", "Aoi", "Ren", "Sakura", "Takeshi", "Yuki", "Kenji"],
               family=["Tanaka", "Suzuki", "Takahashi", "Watanabe", "Yamamoto", "Nakamura",
                       "Kobayashi", "Sato", "Inoue"]),
    "pt": dict(order="gf",
               given=["João", "Ana Beatriz", "Thiago", "Larissa", "Rafael", "Gabriela", "Luís",
                      "Mariana", "Conceição"],
               family=["Silva", "Santos", "Oliveira", "Souza", "Pereira", "Carvalho", "Rodrigues",
                       "Almeida", "Gonçalves", "Ferreira"]),
    "de": dict(order="gf",
               given=["Jürgen", "Anneliese", "Matthias", "Katrin", "Jörg", "Sabine", "Florian",
                      "Lena", "Dieter"],
               family=["Müller", "Schmidt", "Schäfer", "Weiß", "Groß", "Becker", "Hoffmann",
                       "Krüger", "Vogel"]),
    "fr": dict(order="gf",
               given=["Camille", "Étienne", "Margaux", "Théo", "Élodie", "Baptiste", "Inès"],
               family=["Dubois", "Lefèvre", "Moreau", "Girard", "Rousseau", "Fontaine", "Chevalier"]),
    "en": dict(order="gf",
               given=["Emily", "James", "Olivia", "Michael", "Hannah", "Tyler", "Megan", "Brandon",
                      "Kayleigh", "Dwayne"],
               family=["Thompson", "Whitaker", "Caldwell", "Brooks", "Hughes", "Sullivan",
                       "Bennett", "Harrington", "Okoye-Smith"]),
    "tr": dict(order="gf",
               given=["Emre", "Elif", "Burak", "Zeynep", "Mehmet", "Ayşe"],
               family=["Yılmaz", "Kaya", "Demir", "Şahin", "Çelik", "Öztürk"]),
    "fa": dict(order="gf",
               given=["Dariush", "Shirin", "Reza", "Parisa", "Navid"],
               family=["Hosseini", "Tehrani", "Rahimi", "Moradi", "Karimi"]),
    "sw": dict(order="gf",
               given=["Wanjiru", "Otieno", "Achieng", "Kamau", "Njeri"],
               family=["Mwangi", "Odhiambo", "Njoroge", "Wambui", "Kiprono"]),
    "el": dict(order="gf",
               given=["Dimitris", "Eleni", "Nikos", "Katerina"],
               female={"Eleni", "Katerina"},
               family=["Papadopoulos", "Georgiou", "Konstantinidis", "Alexiou"]),
    "uk": dict(order="gf",
               given=["Dmytro", "Olena", "Sergei", "Anastasia", "Oksana"],
               female={"Olena", "Anastasia", "Oksana"},
               family=["Ivanov", "Kovalenko", "Shevchenko", "Petrov", "Bondarenko"]),
    "tl": dict(order="gf",
               given=["Maricel", "Jericho", "Rowena", "Jomar"],
               family=["Dela Cruz", "Bautista", "Villanueva", "Macaraeg"]),
    "he": dict(order="gf",
               given=["Noa", "Yael", "Eitan", "Avital"],
               family=["Cohen", "Levi", "Mizrahi", "Friedman"]),
}

ALL_GIVEN = sorted({g for o in ORIGINS.values() for g in o["given"]})
ALL_FAMILY = sorted({f for o in ORIGINS.values() for f in o["family"]})
# single-token given names, used for the "lone first name" hard negatives
LONE_GIVEN = [g for g in ALL_GIVEN if " " not in g]

_FOLD = {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae",
         "Æ": "AE", "ı": "i", "İ": "I"}


def fold(s):
    s = "".join(_FOLD.get(c, c) for c in s)
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def make_person(origin=None):
    o = origin or rng.choice(list(ORIGINS))
    spec = ORIGINS[o]
    g = rng.choice(spec["given"])
    f = rng.choice(spec["family"])
    if g in spec.get("female", ()):  # gendered surnames (Polish -ski/-ska, Russian -ov/-ova, Greek -os/-ou)
        if o == "pl" and f[-3:] in ("ski", "cki"):
            f = f[:-1] + "a"
        elif o == "uk" and f.endswith("ov"):
            f += "a"
        elif o == "el" and (f.endswith("os") or f.endswith("is")):
            f = f[:-2] + "ou"
    order = rng.choice(spec["order"].split("|"))
    if order == "gff":
        f2 = rng.choice([x for x in spec["family"] if x != f])
        full = f"{g} {f} {f2}"
        fam = f"{f} {f2}"
    elif order == "fmg":
        m = rng.choice(spec["middle"])
        full = f"{f} {m} {g}"
        fam = f
    elif order == "fg":
        full = f"{f} {g}"
        fam = f
    else:
        full = f"{g} {f}"
        fam = f
    # fam1: the surname used with a title or in an email (first surname of a Spanish pair)
    return dict(full=full, given=g, family=fam, fam1=f, origin=o)


# ---------------------------------------------------------------- emails
FREEMAIL = ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "proton.me", "icloud.com",
            "yahoo.co.uk", "web.de", "gmx.net", "wp.pl", "o2.pl", "yahoo.com.vn", "rediffmail.com",
            "hotmail.fr", "uol.com.br", "naver.com", "qq.com", "live.ie", "gmail.com", "gmail.com"]
WORK_DOMAINS = ["northwindlabs.io", "acme-corp.com", "brightpath.co", "kestrel.ai", "fernhill.health",
                "tallyho.finance", "pixelforge.dev", "bluecanoe.app", "ledgerly.com", "orbitfreight.eu"]
VENDOR_DOMAINS = ["globex-supplies.com", "initech.net", "contoso-logistics.de", "umbrella-print.co.uk",
                  "vandelay-imports.com", "soylentfoods.io", "hooli-cloud.com", "dunmore-paper.com"]
ROLE_LOCALS = ["billing", "ap", "payroll", "support", "hr", "accounts", "security", "invoices",
               "noreply", "hello", "careers", "legal", "it-helpdesk", "finance.ops"]


def email_for(person=None, domain=None):
    p = person or make_person()
    g = fold(p["given"]).lower().replace(" ", "").replace("'", "").replace("-", "")
    f = fold(p["fam1"]).lower().replace(" ", "").replace("'", "").replace("-", "")
    style = rng.randrange(7)
    if style == 0:
        local = f"{g}.{f}"
    elif style == 1:
        local = f"{g[0]}{f}"
    elif style == 2:
        local = f"{g}_{f}{rng.randint(1, 99)}"
    elif style == 3:
        local = f"{g}{f[0]}"
    elif style == 4:
        local = f"{g}.{f}+{rng.choice(['slack', 'work', 'bills', 'shop'])}"
    elif style == 5:
        local = f"{f}.{g}"
    else:
        local = f"{g}{rng.randint(80, 2003)}"
    d = domain or rng.choice(FREEMAIL + WORK_DOMAINS)
    return local + "@" + d


def role_email(domain=None):
    return rng.choice(ROLE_LOCALS) + "@" + (domain or rng.choice(VENDOR_DOMAINS + WORK_DOMAINS))


# ---------------------------------------------------------------- phones
US_AREAS = ["415", "212", "646", "312", "206", "512", "617", "303", "404", "718", "858", "971",
            "919", "702", "615", "773", "469", "347", "510", "213"]
CA_AREAS = ["416", "604", "514", "403", "613", "902"]


def _us_number(areas):
    a = rng.choice(areas)
    ex = str(rng.randint(201, 989))
    if rng.random() < 0.15:
        ex, ln = "555", "01" + dg(2)
    else:
        ln = dg(4)
    return a, ex, ln


def phone(country=None):
    c = country or rng.choice(["us", "us", "us", "uk", "de", "fr", "in", "vn", "pl", "br", "es",
                               "ng", "au", "jp", "kr", "cn", "mx", "ie", "se", "pt", "ca", "ke", "ae"])
    r = rng.randrange(4)
    if c in ("us", "ca"):
        a, e, l = _us_number(US_AREAS if c == "us" else CA_AREAS)
        return [f"({a}) {e}-{l}", f"{a}-{e}-{l}", f"+1 {a} {e} {l}", f"{a}.{e}.{l}",
                f"+1-{a}-{e}-{l}", f"1 ({a}) {e}-{l}", f"{a}{e}{l}"][rng.randrange(7)]
    if c == "uk":
        return [f"+44 20 7{dg(3)} {dg(4)}", f"07{dg(3)} {dg(6)}", f"0161 {dg(3)} {dg(4)}",
                f"+44 7{dg(3)} {dg(6)}", f"0151 496 0{dg(3)}", f"020 8{dg(3)} {dg(4)}"][rng.randrange(6)]
    if c == "de":
        return [f"+49 30 {dg(8)}", f"0171 {dg(7)}", f"+49 151 {dg(8)}", f"+49 (0)89 {dg(7)}",
                f"040 {dg(3)} {dg(4)}"][rng.randrange(5)]
    if c == "fr":
        return [f"+33 6 {dg(2)} {dg(2)} {dg(2)} {dg(2)}", f"06 {dg(2)} {dg(2)} {dg(2)} {dg(2)}",
                f"01 {dg(2)} {dg(2)} {dg(2)} {dg(2)}", f"+33 7 {dg(2)} {dg(2)} {dg(2)} {dg(2)}"][r]
    if c == "in":
        m = rng.choice("9876") + dg(4)
        return [f"+91 {m} {dg(5)}", f"0{m} {dg(5)}", f"+91-80-{dg(4)}-{dg(4)}", f"+91{m}{dg(5)}"][r]
    if c == "vn":
        return [f"+84 9{dg(2)} {dg(3)} {dg(3)}", f"09{dg(2)} {dg(3)} {dg(3)}", f"090 {dg(3)} {dg(4)}",
                f"+84 3{dg(2)} {dg(3)} {dg(3)}"][r]
    if c == "pl":
        return [f"+48 5{dg(2)} {dg(3)} {dg(3)}", f"5{dg(2)}-{dg(3)}-{dg(3)}", f"+48 22 {dg(3)} {dg(2)} {dg(2)}",
                f"+48 6{dg(2)} {dg(3)} {dg(3)}"][r]
    if c == "br":
        return [f"+55 11 9{dg(4)}-{dg(4)}", f"(11) 9{dg(4)}-{dg(4)}", f"+55 21 9{dg(4)}-{dg(4)}",
                f"(21) 9{dg(4)}-{dg(4)}"][r]
    if c == "es":
        return [f"+34 6{dg(2)} {dg(2)} {dg(2)} {dg(2)}", f"6{dg(2)} {dg(3)} {dg(3)}",
                f"+34 91 {dg(3)} {dg(2)} {dg(2)}", f"+34 6{dg(8)}"][r]
    if c == "ng":
        return [f"+234 803 {dg(3)} {dg(4)}", f"0803 {dg(3)} {dg(4)}", f"+234 70{dg(1)} {dg(3)} {dg(4)}",
                f"0812 {dg(3)} {dg(4)}"][r]
    if c == "au":
        return [f"+61 4{dg(2)} {dg(3)} {dg(3)}", f"04{dg(2)} {dg(3)} {dg(3)}", f"(02) 9{dg(3)} {dg(4)}",
                f"+61 3 9{dg(3)} {dg(4)}"][r]
    if c == "jp":
        return [f"+81 90-{dg(4)}-{dg(4)}", f"090-{dg(4)}-{dg(4)}", f"+81 3-{dg(4)}-{dg(4)}",
                f"080-{dg(4)}-{dg(4)}"][r]
    if c == "kr":
        return [f"+82 10-{dg(4)}-{dg(4)}", f"010-{dg(4)}-{dg(4)}", f"+82 2-{dg(3)}-{dg(4)}",
                f"010 {dg(4)} {dg(4)}"][r]
    if c == "cn":
        return [f"+86 138 {dg(4)} {dg(4)}", f"139-{dg(4)}-{dg(4)}", f"+86 10 {dg(4)} {dg(4)}",
                f"+86 186{dg(8)}"][r]
    if c == "mx":
        return [f"+52 55 {dg(4)} {dg(4)}", f"55 {dg(4)} {dg(4)}", f"+52 1 33 {dg(4)} {dg(4)}",
                f"+52 81 {dg(4)} {dg(4)}"][r]
    if c == "ie":
        return [f"+353 87 {dg(3)} {dg(4)}", f"087 {dg(3)} {dg(4)}", f"+353 1 {dg(3)} {dg(4)}",
                f"085-{dg(3)}-{dg(4)}"][r]
    if c == "se":
        return [f"+46 70 {dg(3)} {dg(2)} {dg(2)}", f"070-{dg(3)} {dg(2)} {dg(2)}", f"+46 8 {dg(3)} {dg(3)} {dg(2)}",
                f"073-{dg(3)} {dg(2)} {dg(2)}"][r]
    if c == "pt":
        return [f"+351 912 {dg(3)} {dg(3)}", f"912 {dg(3)} {dg(3)}", f"+351 21 {dg(3)} {dg(4)}",
                f"+351 96{dg(1)} {dg(3)} {dg(3)}"][r]
    if c == "ke":
        return [f"+254 7{dg(2)} {dg(3)} {dg(3)}", f"07{dg(2)} {dg(3)} {dg(3)}", f"+254 20 {dg(3)} {dg(4)}",
                f"+2547{dg(8)}"][r]
    if c == "ae":
        return [f"+971 50 {dg(3)} {dg(4)}", f"050 {dg(3)} {dg(4)}", f"+971 4 {dg(3)} {dg(4)}",
                f"+971 55 {dg(3)} {dg(4)}"][r]
    raise ValueError(c)


def phone_tel_pair():
    a, e, l = _us_number(US_AREAS)
    return f"+1{a}{e}{l}", rng.choice([f"({a}) {e}-{l}", f"+1 {a} {e} {l}", f"{a}-{e}-{l}"])


# ---------------------------------------------------------------- cards
def luhn_ok(num):
    digits = [int(c) for c in num if c.isdigit()]
    s = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        s += d
    return s % 10 == 0


def luhn_complete(partial):
    for c in "0123456789":
        if luhn_ok(partial + c):
            return partial + c
    raise AssertionError


CARD_BRANDS = [("visa", ["4"], 16), ("mc", ["51", "52", "53", "54", "55", "2221", "2367", "2720"], 16),
               ("amex", ["34", "37"], 15), ("disc", ["6011", "65", "644"], 16),
               ("jcb", ["3528", "3589"], 16), ("diners", ["36", "300", "305"], 14),
               ("unionpay", ["62"], 16), ("visa19", ["4"], 19), ("maestro", ["6759", "5018"], 16)]
TEST_CARDS = ["4242424242424242", "4111111111111111", "5555555555554444", "378282246310005",
              "6011111111111117", "4000056655665556", "5105105105105100", "3566002020360505",
              "4000000000000002", "2223003122003222"]


def card_digits(brand=None):
    if brand == "test":
        return rng.choice(TEST_CARDS)
    b = [x for x in CARD_BRANDS if x[0] == brand][0] if brand else rng.choice(CARD_BRANDS)
    pre = rng.choice(b[1])
    return luhn_complete(pre + dg(b[2] - len(pre) - 1))


def fmt_card(num, style=None):
    style = style or rng.choice(["plain", "space", "space", "dash"])
    if style == "plain":
        return num
    sep = " " if style == "space" else "-"
    if len(num) == 15:
        parts = [num[:4], num[4:10], num[10:]]
    elif len(num) == 14:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i:i + 4] for i in range(0, len(num), 4)]
    return sep.join(parts)


def luhn_bad16():
    n = rng.choice(["4", "5", "1", "7", "3"]) + dg(14)
    good = luhn_complete(n)
    return n + str((int(good[-1]) + rng.randint(1, 9)) % 10)


# ---------------------------------------------------------------- SSN
def ssn_parts():
    while True:
        a = rng.randint(1, 899)
        if a != 666:
            break
    return f"{a:03d}", f"{rng.randint(1, 99):02d}", f"{rng.randint(1, 9999):04d}"


def ssn_ok(s):
    d = "".join(c for c in s if c.isdigit())
    if len(d) != 9:
        return False
    a, g, n = d[:3], d[3:5], d[5:]
    return a not in ("000", "666") and a[0] != "9" and g != "00" and n != "0000"


# ---------------------------------------------------------------- IBAN
IBAN_SPECS = {
    "DE": "8n10n", "GB": "4B6n8n", "FR": "5n5n11n2n", "ES": "4n4n2n10n", "IT": "1a5n5n12n",
    "NL": "4B10n", "PL": "8n16n", "PT": "4n4n11n2n", "BE": "3n7n2n", "CH": "5n12n",
    "AT": "5n11n", "IE": "4B6n8n", "SE": "3n16n1n", "NO": "4n6n1n", "DK": "4n9n1n",
    "FI": "3n11n", "AE": "3n16n", "TR": "5n1n16n", "RO": "4B16n", "LT": "5n11n",
}
BANK_CODES = {"GB": ["NWBK", "BARC", "HBUK", "LOYD", "MIDL", "MONZ"], "NL": ["ABNA", "INGB", "RABO", "TRIO", "KNAB"],
              "IE": ["AIBK", "BOFI", "IPBS"], "RO": ["BTRL", "RNCB", "BRDE"]}


def iban_check(country, bban):
    s = bban + country + "00"
    num = "".join(str(int(c, 36)) for c in s)
    return f"{98 - int(num) % 97:02d}"


def iban_ok(iban):
    s = iban.replace(" ", "")
    s = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in s)) % 97 == 1


def make_iban(country=None):
    c = country or rng.choice(list(IBAN_SPECS))
    spec = IBAN_SPECS[c]
    bban = ""
    i = 0
    import re
    for n, t in re.findall(r"(\d+)([nacB])", spec):
        n = int(n)
        if t == "n":
            bban += dg(n)
        elif t == "a":
            bban += rs(n, string.ascii_uppercase)
        elif t == "c":
            bban += rs(n, UPNUM)
        else:
            bban += rng.choice(BANK_CODES[c])
    return c + iban_check(c, bban) + bban


def fmt_iban(iban, grouped=None):
    if grouped is None:
        grouped = rng.random() < 0.5
    if not grouped:
        return iban
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


BICS = ["DEUTDEFFXXX", "COBADEFF", "NWBKGB2L", "BARCGB22", "INGBNL2A", "BNPAFRPP", "CITIUS33",
        "PKOPPLPW", "BCOMPTPL", "CAIXESBB", "BOFIIE2D", "NDEASESS", "DABADKKK", "UBSWCHZH80A",
        "BKAUATWW", "RZBRROBU", "BOFAUS3N", "CHASUS33", "HSBCHKHHHKH", "VCBVVNVX"]

# ---------------------------------------------------------------- US bank
def aba_routing():
    while True:
        p = rng.choice(["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12",
                        "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32"])
        d = p + dg(6)
        w = [3, 7, 1, 3, 7, 1, 3, 7]
        s = sum(int(x) * y for x, y in zip(d, w))
        cd = (10 - s % 10) % 10
        return d + str(cd)


def aba_ok(r):
    w = [3, 7, 1, 3, 7, 1, 3, 7, 1]
    return len(r) == 9 and sum(int(x) * y for x, y in zip(r, w)) % 10 == 0


def bank_account():
    return dg(rng.choice([8, 9, 10, 10, 11, 12, 12, 13, 14, 17]), first_nonzero=True)


# ---------------------------------------------------------------- passport / DL / DOB
def passport(letter=None):
    if letter is None:
        letter = rng.random() < 0.5
    if letter:
        return rng.choice("ACEFGHJKLMNPRSTXZ") + dg(8)
    return rng.choice("12345") + dg(8)


def L():
    return rng.choice(string.ascii_uppercase)


def driver_license(state):
    if state == "ca":
        return L() + dg(7)
    if state == "ny":
        d = dg(9)
        return rng.choice([d, f"{d[:3]} {d[3:6]} {d[6:]}"])
    if state == "fl":
        return f"{L()}{dg(3)}-{dg(3)}-{dg(2)}-{dg(3)}-{dg(1)}"
    if state == "wa":
        return "WDL" + rs(9, UPNUM)
    if state == "il":
        return rng.choice([f"{L()}{dg(3)}-{dg(4)}-{dg(4)}", L() + dg(11)])
    if state in ("pa", "tx"):
        return dg(8, first_nonzero=True)
    if state == "nj":
        return f"{L()}{dg(4)} {dg(5)} {dg(5)}"
    if state == "mi":
        return f"{L()} {dg(3)} {dg(3)} {dg(3)} {dg(3)}"
    if state == "oh":
        return rs(2, string.ascii_uppercase) + dg(6)
    if state == "ma":
        return "S" + dg(8)
    if state in ("az", "va"):
        return L() + dg(8)
    if state == "wi":
        return f"{L()}{dg(3)}-{dg(4)}-{dg(4)}-{dg(2)}"
    if state == "md":
        return f"{L()}-{dg(3)}-{dg(3)}-{dg(3)}-{dg(3)}"
    if state == "ga":
        return dg(9, first_nonzero=True)
    raise ValueError(state)


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
MDAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def dob(style=None, y0=1955, y1=2004):
    y = rng.randint(y0, y1)
    m = rng.randint(1, 12)
    d = rng.randint(1, MDAYS[m - 1])
    style = style or rng.choice(["us", "us2", "iso", "eu", "eudot", "long", "longeu", "abbr"])
    return {"us": f"{m}/{d}/{y}", "us2": f"{m:02d}/{d:02d}/{y}", "iso": f"{y}-{m:02d}-{d:02d}",
            "eu": f"{d:02d}/{m:02d}/{y}", "eudot": f"{d:02d}.{m:02d}.{y}",
            "long": f"{MONTHS[m - 1]} {d}, {y}", "longeu": f"{d} {MONTHS[m - 1]} {y}",
            "abbr": f"{d:02d}-{MONTHS[m - 1][:3]}-{y}"}[style]


# ---------------------------------------------------------------- IPs
def ipv4_public():
    while True:
        a = rng.choice([3, 13, 18, 23, 31, 34, 35, 37, 45, 46, 52, 54, 62, 66, 77, 81, 85, 89, 91,
                        94, 103, 104, 109, 141, 142, 145, 151, 157, 163, 176, 178, 185, 188, 195,
                        203, 212, 213, 217])
        b, c, d = rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)
        if a == 203 and b == 0:
            continue
        return f"{a}.{b}.{c}.{d}"


def ipv4_private():
    k = rng.randrange(3)
    if k == 0:
        return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if k == 1:
        return f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def h4():
    return format(rng.randint(1, 0xffff), "x")


def ipv6_public():
    pre = rng.choice(["2a01:4f8", "2600:1f18", "2606:4700", "2a02:c207", "2001:41d0", "2400:cb00",
                      "2a00:1450", "2604:a880", "2a03:b0c0", "2405:200"])
    if rng.random() < 0.5:
        return f"{pre}:{h4()}:{h4()}::{h4()}"
    return f"{pre}:{h4()}:{h4()}:{h4()}:{h4()}:{h4()}:{h4()}"


def ipv6_private(kind=None):
    kind = kind or rng.choice(["ula", "ll"])
    if kind == "ll":
        return f"fe80::{h4()}:{h4()}:{h4()}:{h4()}"
    return f"fd{rs(2, HEX)}:{h4()}:{h4()}::{h4()}"


# ---------------------------------------------------------------- addresses
US_PLACES = [("Portland", "OR", "972"), ("Austin", "TX", "787"), ("Brooklyn", "NY", "112"),
             ("Oakland", "CA", "946"), ("Chicago", "IL", "606"), ("Denver", "CO", "802"),
             ("Seattle", "WA", "981"), ("Atlanta", "GA", "303"), ("Somerville", "MA", "021"),
             ("Raleigh", "NC", "276"), ("Minneapolis", "MN", "554"), ("Phoenix", "AZ", "850"),
             ("Madison", "WI", "537"), ("Ann Arbor", "MI", "481"), ("Pittsburgh", "PA", "152"),
             ("Columbus", "OH", "432"), ("San Diego", "CA", "921"), ("Jersey City", "NJ", "073")]
US_STREETS = ["Maple Ave", "Oak St", "Elm Street", "Cedar Ln", "Willow Dr", "Lincoln Blvd",
              "Pine Ridge Rd", "Magnolia Ct", "Harbor View Dr", "W 14th St", "NE Alberta St",
              "Mission St", "Dolores St", "Sycamore Way", "Bedford Ave", "N Milwaukee Ave",
              "E Colfax Ave", "Peachtree St NE", "Summit Ave", "Grand River Ave"]


def addr_us():
    city, st, z = rng.choice(US_PLACES)
    num = rng.randint(12, 9870)
    unit = rng.choice(["", "", f", Apt {rng.randint(1, 40)}{rng.choice('ABCD')}", f" #{rng.randint(100, 2400)}",
                       f", Unit {rng.randint(1, 30)}"])
    return f"{num} {rng.choice(US_STREETS)}{unit}", f"{city}, {st} {z}{dg(2)}"


UK_PLACES = [("London", ["E", "N", "SE", "SW", "NW", "W"]), ("Manchester", ["M"]), ("Leeds", ["LS"]),
             ("Bristol", ["BS"]), ("Glasgow", ["G"]), ("Edinburgh", ["EH"]), ("Birmingham", ["B"]),
             ("Cardiff", ["CF"]), ("Brighton", ["BN"]), ("Sheffield", ["S"])]
UK_STREETS = ["Kingsley Road", "Victoria Street", "Albert Terrace", "Mill Lane", "Church Road",
              "Hawthorn Close", "Station Approach", "Queens Crescent", "Beech Grove", "Clarence Street"]


def addr_uk():
    city, areas = rng.choice(UK_PLACES)
    pc = f"{rng.choice(areas)}{rng.randint(1, 11)} {rng.randint(1, 9)}{rs(2, 'ABDEFGHJLNPQRSTUWXYZ')}"
    flat = rng.choice(["", f"Flat {rng.randint(1, 12)}, ", f"Flat {rng.randint(1, 6)}{rng.choice('ABC')}, "])
    return f"{flat}{rng.randint(1, 180)} {rng.choice(UK_STREETS)}", f"{city} {pc}"


CA_PLACES = [("Toronto", "ON", "M"), ("Vancouver", "BC", "V"), ("Montréal", "QC", "H"),
             ("Calgary", "AB", "T"), ("Ottawa", "ON", "K"), ("Halifax", "NS", "B")]
CA_STREETS = ["Queen St W", "Dundas St E", "Rue Saint-Denis", "Commercial Dr", "17 Ave SW", "Spring Garden Rd",
              "Bank St", "Bloor St W"]


def addr_ca():
    city, prov, l0 = rng.choice(CA_PLACES)
    pc = f"{l0}{rng.randint(1, 9)}{rng.choice('ABCEGHJKLMNPRSTVXY')} {rng.randint(1, 9)}{rng.choice('ABCEGHJKLMNPRSTVXY')}{rng.randint(0, 9)}"
    unit = rng.choice(["", f", Unit {rng.randint(100, 3200)}", f" Apt {rng.randint(1, 20)}"])
    return f"{rng.randint(10, 2500)} {rng.choice(CA_STREETS)}{unit}", f"{city}, {prov} {pc}"


AU_PLACES = [("Fitzroy", "VIC", "3065"), ("Newtown", "NSW", "2042"), ("Paddington", "NSW", "2021"),
             ("West End", "QLD", "4101"), ("Fremantle", "WA", "6160"), ("Glenelg", "SA", "5045"),
             ("Carlton", "VIC", "3053"), ("Bondi", "NSW", "2026")]
AU_STREETS = ["Smith Street", "Brunswick St", "King Street", "Boundary Rd", "Jetty Road", "Lygon St",
              "Campbell Parade", "Hope Street"]


def addr_au():
    sub, st, pc = rng.choice(AU_PLACES)
    num = rng.choice([f"{rng.randint(1, 12)}/{rng.randint(2, 240)}", f"Unit {rng.randint(1, 9)}/{rng.randint(2, 99)}",
                      str(rng.randint(2, 300))])
    return f"{num} {rng.choice(AU_STREETS)}", f"{sub} {st} {pc}"


def addr_in():
    k = rng.randrange(4)
    if k == 0:
        return (f"Flat {rng.randint(101, 1204)}, {rng.choice(['Sai Residency', 'Prestige Lakeside', 'Shanti Apartments', 'Green Glen Layout'])}, "
                f"{rng.randint(1, 18)}th Cross", f"Indiranagar, Bengaluru {rng.choice(['560038', '560008', '560075'])}")
    if k == 1:
        return (f"{rng.choice('ABCD')}-{rng.randint(1, 99)}, Sector {rng.randint(12, 78)}",
                f"Noida, Uttar Pradesh 2013{dg(2)}")
    if k == 2:
        return (f"House No. {rng.randint(2, 240)}, {rng.randint(1, 4)}nd Main Road, Adyar", f"Chennai 6000{dg(2)}")
    return (f"{rng.randint(1, 40)}/{rng.randint(1, 9)} Linking Road, Bandra West", f"Mumbai 4000{rng.randint(10, 99)}")


DE_PLACES = [("10969", "Berlin"), ("10435", "Berlin"), ("80331", "München"), ("50667", "Köln"),
             ("20095", "Hamburg"), ("60311", "Frankfurt am Main"), ("04109", "Leipzig"), ("70173", "Stuttgart")]
DE_STREETS = ["Lindenstraße", "Hauptstr.", "Am Sonnenhang", "Schönhauser Allee", "Goethestraße",
              "Bergmannstraße", "Kastanienallee", "Weserstr."]


def addr_de():
    pc, city = rng.choice(DE_PLACES)
    return f"{rng.choice(DE_STREETS)} {rng.randint(1, 140)}{rng.choice(['', '', 'a', 'b'])}", f"{pc} {city}"


ADDR = {"us": addr_us, "uk": addr_uk, "ca": addr_ca, "au": addr_au, "in": addr_in, "de": addr_de}

RES_CITIES = ["Lisbon", "Porto", "Denver", "Kraków", "Hanoi", "Lagos", "Austin", "Melbourne", "Toronto",
              "Bengaluru", "Barcelona", "Dublin", "Oslo", "Seoul", "Nairobi", "Mexico City", "São Paulo",
              "Edinburgh", "Da Nang", "Wrocław", "Accra", "Valencia", "Leipzig", "Boise"]

# ---------------------------------------------------------------- secrets
PW_WORDS = ["Marigold", "Lantern", "Falcon", "Copper", "Otter", "Basil", "Juniper", "Harbor", "Cobalt",
            "Maple", "Nebula", "Pepper", "Quartz", "Willow", "Saffron", "Tundra", "Velvet", "Orchid",
            "Biscuit", "Mango", "Pelican", "Thistle", "Ember", "Glacier"]
PW_SYM = "!@#$%^*-_=+?"


def password(style=None):
    style = rng.randrange(7) if style is None else style
    if style == 0:
        return rng.choice(PW_WORDS) + str(rng.randint(2019, 2026)) + rng.choice("!#$*?")
    if style == 1:
        s = rs(rng.randint(13, 20), ALNUM + PW_SYM + "aeiou12")
        while s[-1] in "?.-_=" or s[0] in "-_=":
            s = rs(rng.randint(13, 20), ALNUM + PW_SYM)
        return s
    if style == 2:
        return "-".join(rng.choice(PW_WORDS).lower() for _ in range(3)) + "-" + str(rng.randint(10, 99))
    if style == 3:
        w = rng.choice(PW_WORDS).replace("a", "4").replace("o", "0").replace("e", "3")
        return w + rng.choice(PW_SYM[:6]) + rs(3, ALNUM)
    if style == 4:
        return rng.choice(PW_WORDS) + rng.choice(PW_WORDS) + str(rng.randint(10, 999))
    if style == 5:
        return rng.choice(["Welcome", "Spring", "Summer", "Autumn", "Winter", "Changeme", "Company"]) + \
            str(rng.randint(1, 2025)) + rng.choice(["!", "", "#"])
    return rs(4, string.ascii_lowercase) + rng.choice(PW_SYM[:4]) + rs(4, string.digits) + rs(4, string.ascii_uppercase)


def wifi_password():
    return rng.choice([rng.choice(PW_WORDS) + "Guest" + dg(4), "-".join(rng.choice(PW_WORDS).lower() for _ in range(2)) + dg(3),
                       rs(12, ALNUM), rng.choice(PW_WORDS) + "!" + rng.choice(PW_WORDS) + dg(2)])


def jwt():
    hdr = b64url({"alg": rng.choice(["HS256", "RS256"]), "typ": "JWT"})
    sub = rng.choice([dg(8), "usr_" + rs(12), "auth0|" + rs(24, HEX)])
    iat = rng.randint(1700000000, 1730000000)
    payload = {"sub": sub, "iat": iat, "exp": iat + rng.choice([900, 3600, 86400])}
    if rng.random() < 0.5:
        payload["role"] = rng.choice(["admin", "service", "user"])
    if rng.random() < 0.4:
        payload["iss"] = "https://auth." + rng.choice(WORK_DOMAINS)
    sig = rs(43, B64U) if hdr.startswith("eyJhbGciOiJIUzI1NiIs") else rs(342, B64U)
    return f"{hdr}.{b64url(payload)}.{sig}"


def pem(kind):
    if kind == "rsa":
        head, tail, first, n, w = "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----", "MIIEpAIBAAKCAQEA", rng.randint(20, 25), 64
    elif kind == "pkcs8":
        head, tail, first, n, w = "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", rng.randint(20, 25), 64
    elif kind == "ec":
        head, tail, first, n, w = "-----BEGIN EC PRIVATE KEY-----", "-----END EC PRIVATE KEY-----", "MHcCAQEEI", 3, 64
    else:
        head, tail, first, n, w = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACB", 5, 70
    body = first + rs(w * n - len(first) - rng.randint(10, 40), B64)
    if kind == "openssh":
        body = body.replace("\n", "")
    lines = [body[i:i + w] for i in range(0, len(body), w)]
    if kind == "ec":
        lines[-1] = lines[-1][:rng.randint(20, 40)] + "=="
    return head + "\n" + "\n".join(lines) + "\n" + tail


SECRETS = {
    "SLACK_BOT": lambda: f"xoxb-{dg(rng.choice([10, 11, 12]), True)}-{dg(13, True)}-{rs(24)}",
    "SLACK_USER": lambda: f"xoxp-{dg(10, True)}-{dg(11, True)}-{dg(13, True)}-{rs(32, HEX)}",
    "SLACK_APP": lambda: f"xapp-1-A{rs(10, UPNUM)}-{dg(13, True)}-{rs(64, HEX)}",
    "SLACK_HOOK": lambda: f"https://hooks.slack.com/services/T{rs(8, UPNUM)}/B{rs(10, UPNUM)}/{rs(24)}",
    "AWS_ID": lambda: "AKIA" + rs(16, B32),
    "AWS_ASIA": lambda: "ASIA" + rs(16, B32),
    "AWS_SECRET": lambda: rs(40, ALNUM + "/+"),
    "AWS_SESSION": lambda: "IQoJb3JpZ2luX2VjE" + rs(rng.randint(280, 360), B64) + "=",
    "GH_PAT": lambda: "ghp_" + rs(36),
    "GH_OAUTH": lambda: "gho_" + rs(36),
    "GH_S": lambda: "ghs_" + rs(36),
    "GH_FINE": lambda: "github_pat_11" + rs(20, UPNUM) + "_" + rs(59),
    "GL_PAT": lambda: "glpat-" + rs(20, B64U),
    "STRIPE_SK": lambda: "sk_live_" + rng.choice(["51" + rs(96), rs(24)]),
    "STRIPE_SK_TEST": lambda: "sk_test_51" + rs(96),
    "STRIPE_RK": lambda: "rk_live_51" + rs(96),
    "STRIPE_WH": lambda: "whsec_" + rs(32),
    "GOOGLE_KEY": lambda: "AIza" + rs(35, B64U),
    "OPENAI_KEY": lambda: rng.choice(["sk-" + rs(20) + "T3BlbkFJ" + rs(20),
                                      "sk-proj-" + rs(74, B64U) + "T3BlbkFJ" + rs(74, B64U)]),
    "ANTHROPIC_KEY": lambda: "sk-ant-api03-" + rs(93, B64U) + "AA",
    "NPM_TOKEN": lambda: "npm_" + rs(36),
    "TWILIO_SK": lambda: "SK" + rs(32, HEX),
    "TWILIO_SECRET": lambda: rs(32),
    "TWILIO_AUTH": lambda: rs(32, HEX),
    "SENDGRID": lambda: "SG." + rs(22, B64U) + "." + rs(43, B64U),
    "MAILGUN": lambda: "key-" + rs(32, HEX),
    "DD_API": lambda: rs(32, HEX),
    "DD_APP": lambda: rs(40, HEX),
    "AZURE_KEY": lambda: rs(86, B64) + "==",
    "JWT": jwt,
    "PEM_RSA": lambda: pem("rsa"),
    "PEM_PKCS8": lambda: pem("pkcs8"),
    "PEM_EC": lambda: pem("ec"),
    "PEM_OPENSSH": lambda: pem("openssh"),
    "HF": lambda: "hf_" + rs(34),
    "LINEAR": lambda: "lin_api_" + rs(40),
    "NOTION": lambda: rng.choice(["secret_" + rs(43), "ntn_" + dg(11) + rs(35)]),
    "DO_TOKEN": lambda: "dop_v1_" + rs(64, HEX),
    "PYPI": lambda: "pypi-AgEIcHlwaS5vcmc" + rs(rng.randint(120, 160), B64U),
    "POSTMAN": lambda: "PMAK-" + rs(24, HEX) + "-" + rs(34, HEX),
    "TELEGRAM": lambda: f"{dg(10, True)}:AA{rs(33, B64U)}",
    "DISCORD_HOOK": lambda: f"https://discord.com/api/webhooks/{dg(19, True)}/{rs(68, B64U)}",
    "ATLASSIAN": lambda: "ATATT3xFfGF0" + rs(170, B64U) + "=" + rs(8, HEXU),
    "DATABRICKS": lambda: "dapi" + rs(32, HEX),
    "GRAFANA": lambda: "glsa_" + rs(32) + "_" + rs(8, HEX),
    "NEWRELIC": lambda: "NRAK-" + rs(27, UPNUM),
    "TAILSCALE": lambda: "tskey-auth-k" + rs(10) + "CNTRL-" + rs(33),
    "OKTA": lambda: "00" + rs(40, B64U),
    "SQUARE": lambda: "EAAA" + rs(60, B64U),
    "SUPABASE": lambda: "sbp_" + rs(40, HEX),
    "DOPPLER": lambda: "dp.st.prd." + rs(43),
    "CF_TOKEN": lambda: rs(40, B64U),
    "MAPBOX": lambda: "sk.eyJ1Ijoi" + rs(50) + "." + rs(22, B64U),
    "FIGMA": lambda: "figd_" + rs(40, B64U),
    "AGE": lambda: "AGE-SECRET-KEY-1" + rs(58, "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"),
    "TFC": lambda: rs(14) + ".atlasv1." + rs(67),
    "PULUMI": lambda: "pul-" + rs(40, HEX),
    "HEROKU": lambda: "HRKU-AA" + rs(58, B64U),
    "FLY": lambda: "fo1_" + rs(43, B64U),
    "NETLIFY": lambda: "nfp_" + rs(36),
    "CIRCLE": lambda: "CCIPAT_" + rs(22) + "_" + rs(40, HEX),
    "BUILDKITE": lambda: "bkua_" + rs(40, HEX),
    "SHOPIFY": lambda: "shpat_" + rs(32, HEX),
    "AIRTABLE": lambda: "pat" + rs(14) + "." + rs(64, HEX),
    "SENTRY_TOKEN": lambda: "sntryu_" + rs(64, HEX),
    "RENDER": lambda: "rnd_" + rs(28),
    "PSCALE": lambda: "pscale_tkn_" + rs(43, B64U),
    "REPLICATE": lambda: "r8_" + rs(37),
    "GROQ": lambda: "gsk_" + rs(52),
    "VAULT": lambda: "hvs." + rs(24),
    "HEX32": lambda: rs(32, HEX),
    "HEX64": lambda: rs(64, HEX),
    "B64_40": lambda: rs(43, B64) + "=",
    "ALNUM32": lambda: rs(32),
}
