#!/usr/bin/env python3
"""Blind evaluation set, part 3: bots / integrations / support-HR-finance workflows / multilingual chat.

Hand-written templates + hand-written value generators.  Everything is driven by one seeded
random.Random(3303), so `python3 make.py` always writes the same messages.jsonl.

Template syntax:  [[kind]]  [[kind.arg]]  [[kind:tag]]  [[kind.arg:tag]]
  * kind   -> a generator in GEN (returns text + label, label None = not sensitive)
  * arg    -> generator options (origin / country / format), '_' separated
  * tag    -> same (kind,arg,tag) within a message reuses the same value; person-ish kinds
              (person, given, titled, email, ...) sharing a tag refer to the same person.
Offsets are computed while the text is assembled, never by searching.
"""
import base64
import json
import re
import string
import sys
import unicodedata
import random

SEED = 3303
R = random.Random(SEED)
OUT = "/work/blind/part3/messages.jsonl"
N_TOTAL = 520
N_CLEAN = 260

# ----------------------------------------------------------------------------------------------
# randomness helpers (same algorithms as the `secrets` module, but fed from the seeded RNG so the
# data set is reproducible)
# ----------------------------------------------------------------------------------------------
ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
LOWER_ALNUM = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"


def token_bytes(n):
    return R.randbytes(n)


def token_hex(n):
    return token_bytes(n).hex()


def token_urlsafe(n):
    return base64.urlsafe_b64encode(token_bytes(n)).rstrip(b"=").decode()


def rchars(alphabet, n):
    return "".join(R.choice(alphabet) for _ in range(n))


def digits(n, first_nonzero=False):
    s = rchars(string.digits, n)
    if first_nonzero and s[0] == "0":
        s = R.choice("123456789") + s[1:]
    return s


def pick(seq):
    return R.choice(seq)


def chance(p):
    return R.random() < p


def strip_accents(s):
    s = s.replace("ł", "l").replace("Ł", "L").replace("ß", "ss").replace("ø", "o").replace("đ", "d").replace("Đ", "D")
    s = s.replace("ı", "i").replace("İ", "I")
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


# ----------------------------------------------------------------------------------------------
# check-digit algorithms
# ----------------------------------------------------------------------------------------------
def luhn_ok(num):
    ds = [int(c) for c in num if c.isdigit()]
    total = 0
    for i, d in enumerate(reversed(ds)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(prefix, length):
    body = prefix + digits(length - len(prefix) - 1)
    for c in "0123456789":
        if luhn_ok(body + c):
            return body + c
    raise AssertionError


def iban_from_bban(cc, bban):
    rearr = bban + cc + "00"
    num = "".join(str(int(ch, 36)) for ch in rearr)
    check = 98 - int(num) % 97
    return f"{cc}{check:02d}{bban}"


def iban_ok(iban):
    s = iban.replace(" ", "").replace("\u00a0", "")
    rearr = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearr)) % 97 == 1


def aba_complete(first8):
    d = [int(c) for c in first8]
    s = 3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5])
    return first8 + str((-s) % 10)


def aba_ok(r):
    d = [int(c) for c in r]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 == 0


# ----------------------------------------------------------------------------------------------
# hand-written name lists, grouped by origin.  "Name:f" marks a female given name (used where the
# family name is gendered, written "Masc/Fem").
# ----------------------------------------------------------------------------------------------
NAMES = {
    "en": (
        "James Emily Michael Sarah Robert Jessica David Ashley Daniel Megan Thomas Hannah Ryan Lauren "
        "Kevin Olivia Brandon Courtney Gregory Heather".split(),
        "Smith Johnson Walker Thompson Harris Clarke Bennett Foster Hughes Reynolds Whitaker Sullivan "
        "Murphy O'Brien Fitzgerald Campbell Henderson Pritchard".split(),
    ),
    "es": (
        ["Alejandro", "Lucía:f", "Javier", "Carmen:f", "Sofía:f", "Diego", "Valentina:f", "Mateo", "Paula:f",
         "Andrés", "Ximena:f", "Rodrigo", "María José:f", "Juan Pablo", "Guadalupe:f", "Iñaki"],
        "García López Martínez Rodríguez Fernández Hernández Gómez Sánchez Ramírez Torres Castillo Vargas "
        "Morales Ortega Jiménez Ruiz Echeverría Quiñones".split(),
    ),
    "pt": (
        ["João", "Ana Beatriz:f", "Pedro", "Mariana:f", "Thiago", "Larissa:f", "Rafael", "Beatriz:f",
         "Gonçalo", "Inês:f", "Luana:f", "Vitória:f", "Caio", "Leandro"],
        "Silva Santos Oliveira Souza Pereira Costa Ferreira Rodrigues Almeida Carvalho Gonçalves Ribeiro "
        "Moreira Lopes Magalhães".split(),
    ),
    "de": (
        ["Lukas", "Anna:f", "Jonas", "Lea:f", "Felix", "Johanna:f", "Maximilian", "Katharina:f", "Tobias",
         "Sabine:f", "Jürgen", "Lena:f", "Birgit:f", "Dieter"],
        "Müller Schmidt Schneider Fischer Weber Wagner Becker Hoffmann Schäfer Krüger Zimmermann Braun "
        "Vogel Köhler Weißmann".split(),
    ),
    "fr": (
        ["Camille:f", "Louis", "Chloé:f", "Hugo", "Manon:f", "Théo", "Élodie:f", "Mathieu", "Amélie:f",
         "Julien", "Léa:f", "Baptiste", "Anne-Sophie:f", "Jean-Luc"],
        "Dubois Lefèvre Moreau Laurent Girard Rousseau Fontaine Chevalier Mercier Lambert Faure Bonnet "
        "Garnier Beaumont".split(),
    ),
    "pl": (
        ["Katarzyna:f", "Piotr", "Agnieszka:f", "Tomasz", "Małgorzata:f", "Paweł", "Zofia:f", "Krzysztof",
         "Magdalena:f", "Łukasz", "Joanna:f", "Wojciech"],
        ["Kowalski/Kowalska", "Nowak", "Wiśniewski/Wiśniewska", "Wójcik", "Kamiński/Kamińska",
         "Lewandowski/Lewandowska", "Zieliński/Zielińska", "Szymański/Szymańska", "Woźniak",
         "Dąbrowski/Dąbrowska", "Kozłowski/Kozłowska", "Jankowski/Jankowska", "Mazur", "Krawczyk"],
    ),
    "vi": (  # family-first; given part includes a middle name
        ["Văn An", "Thị Hương:f", "Minh Tuấn", "Thị Trang:f", "Đức Dũng", "Ngọc Mai:f", "Minh Khoa",
         "Thanh Thảo:f", "Quang Huy", "Thu Hà:f", "Bảo Ngọc:f", "Hoàng Long"],
        "Nguyễn Trần Lê Phạm Hoàng Huỳnh Phan Vũ Võ Đặng Bùi Đỗ".split(),
    ),
    "tr": (
        ["Mehmet", "Ayşe:f", "Emre", "Zeynep:f", "Burak", "Elif:f", "Oğuz", "Selin:f", "Cem", "Gülşen:f",
         "Yusuf", "Deniz:f"],
        "Yılmaz Kaya Demir Şahin Çelik Yıldız Aydın Öztürk Arslan Doğan Kılıç Aslan".split(),
    ),
    "it": (
        ["Giulia:f", "Marco", "Francesca:f", "Alessandro", "Chiara:f", "Lorenzo", "Federica:f", "Matteo",
         "Elisa:f", "Davide", "Martina:f", "Giovanni"],
        "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo Conti De Luca".split(" "),
    ),
    "nl": (
        ["Daan", "Sanne:f", "Bram", "Femke:f", "Joris", "Lotte:f", "Thijs", "Anouk:f", "Pieter", "Maartje:f",
         "Ruud", "Eline:f"],
        ["de Jong", "Jansen", "de Vries", "van den Berg", "van Dijk", "Bakker", "Visser", "Smit", "Meijer",
         "de Boer", "Mulder", "van der Meer"],
    ),
    "ng": (
        ["Oluwaseun", "Chiamaka:f", "Emeka", "Ngozi:f", "Tunde", "Funmilayo:f", "Chukwuemeka", "Ifeoma:f",
         "Babatunde", "Amaka:f", "Yetunde:f", "Obinna"],
        "Adebayo Okafor Okonkwo Eze Nwosu Balogun Adeyemi Obi Chukwu Olawale Afolabi Okoro".split(),
    ),
    "in": (
        ["Priya:f", "Arjun", "Ananya:f", "Rahul", "Divya:f", "Vikram", "Sneha:f", "Karthik", "Lakshmi:f",
         "Rohan", "Meera:f", "Aditya"],
        "Sharma Patel Raman Iyer Reddy Nair Gupta Krishnan Mehta Chatterjee Desai Venkatesan".split(),
    ),
    "cn": (  # romanised, written given-first in western tools
        ["Wei", "Jing:f", "Hao", "Xiuying:f", "Yan:f", "Jun", "Mei:f", "Zhiwei", "Yifan", "Lei"],
        "Zhang Wang Li Liu Chen Yang Huang Zhao Wu Zhou Xu Sun".split(),
    ),
    "jp": (
        ["Haruto", "Yui:f", "Sota", "Aoi:f", "Ren", "Sakura:f", "Kenji", "Yuki:f", "Hiroshi", "Mei:f"],
        "Tanaka Suzuki Takahashi Watanabe Ito Yamamoto Nakamura Kobayashi Sato Kato".split(),
    ),
    "kr": (
        ["Minjun", "Seoyeon:f", "Jiho", "Haeun:f", "Donghyun", "Jiwoo:f"],
        "Kim Lee Park Choi Jung Kang".split(),
    ),
    "ar": (
        ["Mohammed", "Fatima:f", "Omar", "Layla:f", "Youssef", "Aisha:f", "Khalid", "Noor:f", "Karim", "Huda:f"],
        "Al-Sayed Haddad Khoury Mansour El-Amin Nasser Farouk Hamdan Saleh Aziz".split(),
    ),
    "ru": (
        ["Dmitri", "Olga:f", "Sergei", "Anastasia:f", "Alexei", "Natalia:f", "Oksana:f", "Andriy"],
        ["Ivanov/Ivanova", "Petrov/Petrova", "Smirnov/Smirnova", "Kuznetsov/Kuznetsova", "Shevchenko",
         "Kovalenko", "Bondarenko", "Volkov/Volkova"],
    ),
    "ke": (
        ["Wanjiru:f", "Achieng:f", "Baraka", "Amani", "Njeri:f", "Juma"],
        "Kamau Otieno Mwangi Odhiambo Wambui Kariuki".split(),
    ),
    "ph": (
        ["Maricel:f", "Jomar", "Rhea:f", "Paolo", "Kristine:f", "Renato"],
        ["Dela Cruz", "Reyes", "Bautista", "Villanueva", "Mendoza", "Santiago"],
    ),
    "gr": (
        ["Nikos", "Eleni:f", "Giorgos", "Dimitra:f", "Kostas", "Sofia:f"],
        ["Papadopoulos/Papadopoulou", "Georgiou", "Nikolaidis/Nikolaidou", "Karagiannis/Karagianni", "Vlachos/Vlachou"],
    ),
}
# native-script names (family name first), with a romanisation for e-mail handles
SCRIPT_NAMES = {
    "cnh": (["王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴"],
            ["伟", "娜", "敏", "洋", "静", "帆", "磊", "晓明", "子涵", "浩然"],
            {"王": "wang", "李": "li", "张": "zhang", "刘": "liu", "陈": "chen", "杨": "yang", "赵": "zhao",
             "黄": "huang", "周": "zhou", "吴": "wu", "伟": "wei", "娜": "na", "敏": "min", "洋": "yang",
             "静": "jing", "帆": "fan", "磊": "lei", "晓明": "xiaoming", "子涵": "zihan", "浩然": "haoran"}),
    "jpk": (["田中", "佐藤", "鈴木", "高橋", "渡辺", "山本"],
            ["太郎", "花子", "一郎", "美咲", "健太", "陽菜"],
            {"田中": "tanaka", "佐藤": "sato", "鈴木": "suzuki", "高橋": "takahashi", "渡辺": "watanabe",
             "山本": "yamamoto", "太郎": "taro", "花子": "hanako", "一郎": "ichiro", "美咲": "misaki",
             "健太": "kenta", "陽菜": "hina"}),
    "krh": (["김", "이", "박", "최", "정"],
            ["민준", "서연", "지호", "하은", "도현"],
            {"김": "kim", "이": "lee", "박": "park", "최": "choi", "정": "jung", "민준": "minjun",
             "서연": "seoyeon", "지호": "jiho", "하은": "haeun", "도현": "dohyun"}),
    "arab": (["العلي", "الحداد", "منصور", "الخوري", "ناصر", "صالح", "عبدالله", "الفارس"],
             ["محمد", "فاطمة", "عمر", "ليلى", "يوسف", "عائشة", "خالد", "نور"],
             {"العلي": "alali", "الحداد": "haddad", "منصور": "mansour", "الخوري": "khoury", "ناصر": "nasser",
              "صالح": "saleh", "عبدالله": "abdullah", "الفارس": "alfaris", "محمد": "mohammed", "فاطمة": "fatima",
              "عمر": "omar", "ليلى": "layla", "يوسف": "youssef", "عائشة": "aisha", "خالد": "khalid", "نور": "noor"}),
}
FAMILY_FIRST = {"vi", "cnh", "jpk", "krh"}
LATIN_ORIGINS = list(NAMES.keys())

TITLES = {
    "en": ["Dr.", "Mr.", "Ms.", "Mrs.", "Prof.", "Dr"],
    "es": ["Sr.", "Sra.", "Dra.", "Dr."],
    "pt": ["Sr.", "Sra.", "Dr.", "Dra."],
    "de": ["Herr", "Frau", "Dr.", "Frau Dr."],
    "fr": ["Mme", "M.", "Dr", "Madame", "Monsieur"],
    "pl": ["Pan", "Pani", "dr"],
    "it": ["Sig.", "Sig.ra", "Dott.", "Dott.ssa"],
    "nl": ["dhr.", "mevr.", "Dr."],
    "tr": ["Dr."],
    "ng": ["Dr.", "Mr.", "Mrs.", "Chief"],
    "in": ["Dr.", "Mr.", "Ms."],
    "cn": ["Dr.", "Mr.", "Ms."],
    "jp": ["Dr.", "Mr.", "Ms."],
    "kr": ["Dr.", "Mr.", "Ms."],
    "ar": ["Dr.", "Mr.", "Ms."],
    "ru": ["Dr.", "Mr.", "Ms."],
    "ke": ["Dr.", "Mr.", "Ms."],
    "ph": ["Dr.", "Mr.", "Ms.", "Atty."],
    "gr": ["Dr.", "Mr.", "Ms."],
    "vi": ["Mr.", "Ms.", "Dr."],
}
FEMALE_TITLES = {"Ms.", "Mrs.", "Sra.", "Dra.", "Frau", "Frau Dr.", "Mme", "Madame", "Pani", "Sig.ra", "Dott.ssa", "mevr."}
MALE_TITLES = {"Mr.", "Sr.", "Herr", "M.", "Monsieur", "Pan", "Sig.", "Dott.", "dhr."}


class Person:
    def __init__(self, origin=None):
        if origin is None:
            origin = pick(LATIN_ORIGINS + ["en", "en", "es", "in", "ng", "cnh", "arab", "jpk", "krh"])
        self.origin = origin
        if origin in SCRIPT_NAMES:
            fams, givs, roman = SCRIPT_NAMES[origin]
            self.family, self.given = pick(fams), pick(givs)
            self.fem = None
            self.a_given, self.a_family = roman[self.given], roman[self.family]
            self.middle = None
            return
        givs, fams = NAMES[origin]
        g = pick(givs)
        self.fem = g.endswith(":f")
        self.given = g.split(":")[0]
        f = pick(fams)
        if "/" in f:
            f = f.split("/")[1 if self.fem else 0]
        self.family = f
        # Iberian double surnames, occasional middle initials
        if origin in ("es",) and chance(0.45):
            f2 = pick(fams)
            if f2 != f:
                self.family = f + " " + f2
        if origin == "pt" and chance(0.35):
            self.family = pick(["da ", "dos ", "de "]) + pick(fams) + " " + self.family
        self.middle = pick("ABCDEFGHJKLMNPRSTW") if origin in ("en", "in", "ph") and chance(0.5) else None
        self.a_given = strip_accents(self.given).lower().replace(" ", "").replace("'", "")
        fam_last = self.family.split(" ")[-1] if origin != "nl" else self.family.replace(" ", "")
        self.a_family = strip_accents(fam_last).lower().replace("'", "").replace("-", "")

    def full(self):
        if self.origin in ("cnh", "jpk", "krh"):
            return self.family + ("" if self.origin != "jpk" or chance(0.5) else " ") + self.given
        if self.origin == "arab":
            return self.given + " " + self.family
        if self.origin == "vi":
            return self.family + " " + self.given
        return self.given + " " + self.family

    def with_middle(self):
        if self.middle and self.origin not in FAMILY_FIRST:
            return f"{self.given} {self.middle}. {self.family}"
        return self.full()

    def last_first(self):
        if self.origin in FAMILY_FIRST or self.origin == "arab":
            return self.full()
        return f"{self.family}, {self.given}"

    def titled(self):
        if self.origin in SCRIPT_NAMES:
            return self.full()
        ts = TITLES.get(self.origin, TITLES["en"])
        ok = [t for t in ts if not ((t in FEMALE_TITLES and not self.fem) or (t in MALE_TITLES and self.fem))]
        t = pick(ok or ["Dr."])
        fam = self.family
        if self.origin == "vi":
            fam = self.family  # Vietnamese: Mr. Nguyen / Ms. Tran (family)
            fam = strip_accents(fam) if t in ("Mr.", "Ms.") and chance(0.5) else fam
        return f"{t} {fam}"

    def given_only(self):
        if self.origin == "vi":
            return self.given.split(" ")[-1]
        if self.origin in ("cnh", "jpk", "krh", "arab"):
            return self.given
        return self.given

    def email_local(self):
        g, f = self.a_given, self.a_family
        style = R.randrange(7)
        if style == 0:
            return f"{g}.{f}"
        if style == 1:
            return f"{g[0]}{f}"
        if style == 2:
            return f"{g}_{f}{R.randint(1, 99)}"
        if style == 3:
            return f"{g}.{f}"
        if style == 4:
            return f"{f}.{g}"
        if style == 5:
            return f"{g}{f[0]}"
        return f"{g}{R.randint(70, 99)}"


WORK_DOMAINS = ["acme.io", "northwind.io", "globex.com", "initech.net", "hooli.dev", "umbrella-corp.com",
                "brightpath.co", "lumenworks.io", "kestrel.app", "tidewater.eu", "bluefin.de", "mareva.pt",
                "ferrotech.it", "polaris-software.pl", "saigonlabs.vn", "anadolu-tek.com.tr", "tulpdata.nl"]
PERSONAL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "proton.me",
                    "gmx.de", "web.de", "orange.fr", "libero.it", "wp.pl", "uol.com.br", "yandex.ru",
                    "mail.ru", "hotmail.co.uk", "yahoo.co.jp", "naver.com", "qq.com", "rediffmail.com"]
ROLE_LOCALS = ["support", "billing", "hr", "payroll", "careers", "noreply", "accounts", "security", "help",
               "facturacion", "kontakt", "rh", "contato", "biuro", "destek", "info"]


# ----------------------------------------------------------------------------------------------
# phone numbers by country (all digits random)
# ----------------------------------------------------------------------------------------------
def _d(n):
    return digits(n)


def phone(cc=None):
    cc = cc or pick(["us", "us", "us", "uk", "de", "fr", "es", "pt", "br", "pl", "it", "nl", "tr", "vn", "ng",
                     "in", "au", "jp", "mx", "ca", "ke", "ie", "ae", "kr", "cn"])
    f = R.randrange(4)
    if cc in ("us", "ca"):
        a = pick(["415", "212", "312", "646", "206", "512", "617", "303", "404", "718", "305", "702", "919", "720",
                  "347", "503"]) if cc == "us" else pick(["416", "604", "514", "403", "613", "647"])
        e = str(R.randint(201, 989))
        l = _d(4)
        return [f"({a}) {e}-{l}", f"{a}-{e}-{l}", f"+1 {a} {e} {l}", f"{a}.{e}.{l}", f"+1-{a}-{e}-{l}",
                f"+1 ({a}) {e}-{l}", f"+1{a}{e}{l}"][R.randrange(7)]
    if cc == "uk":
        return [f"+44 20 7946 {_d(4)}", f"020 7{_d(3)} {_d(4)}", f"07700 9{_d(5)}", f"+44 7{_d(3)} {_d(6)}",
                f"0161 496 {_d(4)}", f"+44 (0)113 {_d(3)} {_d(4)}"][R.randrange(6)]
    if cc == "de":
        return [f"+49 30 {_d(4)} {_d(4)}", f"+49 151 {_d(4)} {_d(4)}", f"030 {_d(8)}", f"0176 {_d(8)}",
                f"+49 (0)89 {_d(4)} {_d(4)}", f"+49 40 {_d(3)} {_d(3)}-{_d(2)}"][R.randrange(6)]
    if cc == "fr":
        p = lambda: " ".join(_d(2) for _ in range(4))
        return [f"+33 6 {p()}", f"06 {p()}", f"+33 1 {p()}", f"01 {p()}", f"07 {p()}", f"+33 (0)7 {p()}"][R.randrange(6)]
    if cc == "es":
        return [f"+34 6{_d(2)} {_d(3)} {_d(3)}", f"6{_d(2)} {_d(2)} {_d(2)} {_d(2)}", f"+34 91 {_d(3)} {_d(2)} {_d(2)}",
                f"+34 93 {_d(3)} {_d(2)} {_d(2)}"][f]
    if cc == "pt":
        return [f"+351 9{_d(2)} {_d(3)} {_d(3)}", f"9{_d(2)} {_d(3)} {_d(3)}", f"+351 21 {_d(3)} {_d(4)}",
                f"+351 22 {_d(3)} {_d(4)}"][f]
    if cc == "br":
        return [f"+55 11 9{_d(4)}-{_d(4)}", f"(11) 9{_d(4)}-{_d(4)}", f"+55 (21) 9{_d(4)}-{_d(4)}",
                f"+55 41 3{_d(3)}-{_d(4)}"][f]
    if cc == "pl":
        return [f"+48 5{_d(2)} {_d(3)} {_d(3)}", f"5{_d(2)}-{_d(3)}-{_d(3)}", f"+48 22 {_d(3)} {_d(2)} {_d(2)}",
                f"+48 6{_d(2)} {_d(3)} {_d(3)}"][f]
    if cc == "it":
        return [f"+39 3{_d(2)} {_d(3)} {_d(4)}", f"3{_d(2)} {_d(7)}", f"+39 06 {_d(4)} {_d(4)}",
                f"+39 02 {_d(4)} {_d(4)}"][f]
    if cc == "nl":
        return [f"+31 6 {_d(8)}", f"06-{_d(8)}", f"+31 20 {_d(3)} {_d(4)}", f"020-{_d(7)}"][f]
    if cc == "tr":
        return [f"+90 5{_d(2)} {_d(3)} {_d(2)} {_d(2)}", f"05{_d(2)} {_d(3)} {_d(2)} {_d(2)}",
                f"+90 (212) {_d(3)} {_d(2)} {_d(2)}", f"0 (5{_d(2)}) {_d(3)} {_d(2)} {_d(2)}"][f]
    if cc == "vn":
        return [f"+84 9{_d(2)} {_d(3)} {_d(3)}", f"09{_d(2)} {_d(3)} {_d(3)}", f"+84 28 {_d(4)} {_d(4)}",
                f"03{_d(2)}.{_d(3)}.{_d(3)}"][f]
    if cc == "ng":
        return [f"+234 803 {_d(3)} {_d(4)}", f"0803 {_d(3)} {_d(4)}", f"+234{pick(['803', '806', '813', '703'])}{_d(7)}",
                f"+234 (0) 812 {_d(3)} {_d(4)}"][f]
    if cc == "in":
        return [f"+91 9{_d(4)} {_d(5)}", f"09{_d(4)} {_d(5)}", f"+91-9{_d(4)}-{_d(5)}", f"+91 80 {_d(4)} {_d(4)}"][f]
    if cc == "au":
        return [f"+61 4{_d(2)} {_d(3)} {_d(3)}", f"04{_d(2)} {_d(3)} {_d(3)}", f"(02) 9{_d(3)} {_d(4)}",
                f"+61 3 9{_d(3)} {_d(4)}"][f]
    if cc == "jp":
        return [f"+81 90-{_d(4)}-{_d(4)}", f"090-{_d(4)}-{_d(4)}", f"+81 3-{_d(4)}-{_d(4)}", f"03-{_d(4)}-{_d(4)}"][f]
    if cc == "mx":
        return [f"+52 55 {_d(4)} {_d(4)}", f"55 {_d(4)} {_d(4)}", f"+52 1 33 {_d(4)} {_d(4)}", f"(81) {_d(4)}-{_d(4)}"][f]
    if cc == "ke":
        return [f"+254 7{_d(2)} {_d(3)} {_d(3)}", f"07{_d(2)} {_d(6)}", f"+254 20 {_d(3)} {_d(4)}", f"+2547{_d(8)}"][f]
    if cc == "ie":
        return [f"+353 87 {_d(3)} {_d(4)}", f"087 {_d(3)} {_d(4)}", f"+353 1 {_d(3)} {_d(4)}", f"(01) {_d(3)} {_d(4)}"][f]
    if cc == "ae":
        return [f"+971 50 {_d(3)} {_d(4)}", f"050 {_d(3)} {_d(4)}", f"+971 4 {_d(3)} {_d(4)}", f"+97155{_d(7)}"][f]
    if cc == "kr":
        return [f"+82 10-{_d(4)}-{_d(4)}", f"010-{_d(4)}-{_d(4)}", f"+82 2-{_d(3)}-{_d(4)}", f"010 {_d(4)} {_d(4)}"][f]
    if cc == "cn":
        return [f"+86 138 {_d(4)} {_d(4)}", f"139{_d(8)}", f"+86 10 {_d(4)} {_d(4)}", f"+86-21-{_d(8)}"][f]
    raise KeyError(cc)


# ----------------------------------------------------------------------------------------------
# street addresses (one LOCATION span each); '\n' variants for multi-line blocks
# ----------------------------------------------------------------------------------------------
US_STREETS = ["Maple", "Oak", "Cedar", "Elm", "Willow", "Lakeview", "Sunset", "Highland", "Pine", "Washington",
              "Franklin", "Jefferson", "Magnolia", "Birch", "Hillcrest", "Meadowbrook", "Chestnut", "Riverside"]
US_SUFFIX = ["St", "Ave", "Blvd", "Rd", "Ln", "Dr", "Ct", "Way", "Street", "Avenue", "Drive"]
US_CITIES = [("Springfield", "IL", "627"), ("Austin", "TX", "787"), ("Denver", "CO", "802"), ("Portland", "OR", "972"),
             ("Columbus", "OH", "432"), ("Raleigh", "NC", "276"), ("Sacramento", "CA", "958"), ("Tampa", "FL", "336"),
             ("Brooklyn", "NY", "112"), ("Seattle", "WA", "981"), ("Pittsburgh", "PA", "152"), ("Madison", "WI", "537"),
             ("Phoenix", "AZ", "850"), ("Atlanta", "GA", "303"), ("Somerville", "MA", "021"), ("Evanston", "IL", "602")]
UK_PLACES = [("Leeds", "LS6 2AB"), ("Manchester", "M14 5RT"), ("Bristol", "BS7 8QE"), ("London", "SE15 4QN"),
             ("Glasgow", "G12 8QQ"), ("Cardiff", "CF24 4HQ"), ("Birmingham", "B29 6BD"), ("Edinburgh", "EH9 1PR"),
             ("Sheffield", "S10 2TN"), ("London", "N16 7UX"), ("Nottingham", "NG7 1FS")]
UK_STREETS = ["Kingsley Road", "Victoria Street", "Albert Terrace", "Mill Lane", "Church Close", "Beechwood Gardens",
              "Station Road", "Queens Drive", "Hawthorn Avenue", "Park View"]
CA_PLACES = [("Toronto", "ON", "M5V 2T6"), ("Vancouver", "BC", "V6B 1A1"), ("Montréal", "QC", "H2X 1Y4"),
             ("Calgary", "AB", "T2P 1J9"), ("Ottawa", "ON", "K1P 5G4"), ("Halifax", "NS", "B3H 4R2")]
CA_STREETS = ["Queen St W", "Rue Saint-Denis", "Granville St", "Bank St", "Spring Garden Rd", "17 Ave SW", "Dundas St E"]
AU_PLACES = [("Bondi", "NSW", "2026"), ("Fitzroy", "VIC", "3065"), ("South Brisbane", "QLD", "4101"),
             ("Fremantle", "WA", "6160"), ("Glenelg", "SA", "5045"), ("Newtown", "NSW", "2042")]
AU_STREETS = ["Campbell Pde", "Brunswick St", "Grey St", "High St", "Jetty Rd", "King St", "Warrigal Rd"]
IN_PLACES = [("Indiranagar", "Bengaluru", "560038"), ("Andheri West", "Mumbai", "400058"), ("Koregaon Park", "Pune", "411001"),
             ("Banjara Hills", "Hyderabad", "500034"), ("Adyar", "Chennai", "600020"), ("Salt Lake", "Kolkata", "700091")]
IN_BLDG = ["Sai Residency", "Prestige Lakeside", "Green Acres Apartments", "Shanti Niwas", "Lodha Palava", "Sri Krishna Enclave"]
IN_ROAD = ["14th Cross", "100 Feet Road", "Link Road", "2nd Main", "MG Road", "Lane 6"]
DE_PLACES = [("Schönhauser Allee", "10437", "Berlin"), ("Leopoldstraße", "80802", "München"),
             ("Eppendorfer Weg", "20259", "Hamburg"), ("Aachener Straße", "50674", "Köln"),
             ("Berger Straße", "60316", "Frankfurt am Main"), ("Königsbrücker Str.", "01099", "Dresden"),
             ("Karl-Liebknecht-Str.", "04107", "Leipzig")]


def address(kind=None, multi=False):
    kind = kind or pick(["US", "US", "US", "UK", "UK", "CA", "AU", "IN", "DE", "FR", "ES", "PT", "BR", "IT", "NL", "PL"])
    sep = "\n" if multi else ", "
    if kind == "US":
        c, st, z = pick(US_CITIES)
        apt = pick(["", "", f", Apt {R.randint(1, 30)}{pick('ABCD')}", f" #{R.randint(100, 999)}", f", Unit {R.randint(1, 40)}"])
        line1 = f"{R.randint(12, 9899)} {pick(['', 'N ', 'S ', 'W ', 'E '])}{pick(US_STREETS)} {pick(US_SUFFIX)}{apt}"
        return line1 + sep + f"{c}, {st} {z}{_d(2)}" + (f"-{_d(4)}" if chance(0.15) else "")
    if kind == "UK":
        town, pc = pick(UK_PLACES)
        flat = pick(["", "", f"Flat {R.randint(1, 12)}, "])
        num = f"{R.randint(2, 140)}{pick(['', '', '', 'A', 'B'])}"
        return f"{flat}{num} {pick(UK_STREETS)}" + sep + f"{town} {pc}" if not multi else \
            f"{flat}{num} {pick(UK_STREETS)}\n{town}\n{pc}"
    if kind == "CA":
        c, pr, pc = pick(CA_PLACES)
        unit = pick(["", f"Unit {R.randint(101, 2404)}, ", f"{R.randint(101, 2404)}-"])
        return f"{unit}{R.randint(10, 2999)} {pick(CA_STREETS)}" + sep + f"{c}, {pr} {pc}" if not multi else \
            f"{unit}{R.randint(10, 2999)} {pick(CA_STREETS)}\n{c} {pr}  {pc}"
    if kind == "AU":
        sub, st, pc = pick(AU_PLACES)
        unit = pick(["", f"Unit {R.randint(1, 20)}, ", f"{R.randint(1, 20)}/"])
        return f"{unit}{R.randint(1, 300)} {pick(AU_STREETS)}" + sep + f"{sub} {st} {pc}"
    if kind == "IN":
        area, city, pin = pick(IN_PLACES)
        return f"Flat {R.randint(101, 1204)}, {pick(IN_BLDG)}, {pick(IN_ROAD)}, {area}" + sep + \
            f"{city}{pick([' ', ' - ', ', '])}{pin}"
    if kind == "DE":
        street, plz, city = pick(DE_PLACES)
        return f"{street} {R.randint(1, 180)}{pick(['', '', 'a', 'b'])}" + sep + f"{plz} {city}"
    if kind == "FR":
        return pick([f"{R.randint(1, 120)} rue des Lilas{sep}69003 Lyon",
                     f"{R.randint(1, 200)} avenue Jean Jaurès{sep}31000 Toulouse",
                     f"{R.randint(1, 150)}, boulevard Voltaire{sep}75011 Paris",
                     f"{R.randint(1, 90)} bis rue du Faubourg Saint-Antoine{sep}75012 Paris",
                     f"Appt {R.randint(1, 40)}, {R.randint(1, 60)} quai de la Fosse{sep}44000 Nantes"])
    if kind == "ES":
        return pick([f"Calle de Alcalá {R.randint(1, 300)}, {R.randint(1, 9)}º {pick('ABCD')}{sep}28009 Madrid",
                     f"Carrer de Mallorca {R.randint(1, 500)}, {R.randint(1, 6)}r {R.randint(1, 4)}a{sep}08008 Barcelona",
                     f"Avenida del Puerto {R.randint(1, 200)}{sep}46021 Valencia",
                     f"C/ Sierpes {R.randint(1, 90)}, bajo{sep}41004 Sevilla"])
    if kind == "PT":
        return pick([f"Rua Augusta {R.randint(1, 280)}, {R.randint(1, 5)}º Esq.{sep}1100-053 Lisboa",
                     f"Avenida da Boavista {R.randint(100, 3000)}{sep}4100-114 Porto",
                     f"Rua de Santa Catarina {R.randint(1, 900)}, {R.randint(1, 4)}º Dto{sep}4000-450 Porto"])
    if kind == "BR":
        return pick([f"Rua Oscar Freire {R.randint(100, 2000)}, apto {R.randint(11, 190)}, Jardins{sep}São Paulo - SP, 01426-001",
                     f"Av. Atlântica {R.randint(100, 4000)}, ap. {R.randint(101, 1202)}, Copacabana{sep}Rio de Janeiro - RJ, 22021-001",
                     f"Rua XV de Novembro {R.randint(10, 1500)}{sep}Curitiba - PR, 80020-310"])
    if kind == "IT":
        return pick([f"Via Torino {R.randint(1, 120)}{sep}20123 Milano MI",
                     f"Corso Vittorio Emanuele II {R.randint(1, 300)}{sep}10123 Torino",
                     f"Via dei Mille {R.randint(1, 80)}, int. {R.randint(1, 20)}{sep}80121 Napoli",
                     f"Via Zamboni {R.randint(1, 60)}{sep}40126 Bologna BO"])
    if kind == "NL":
        return pick([f"Prinsengracht {R.randint(1, 900)}{pick(['', '-II', ' hs', 'A'])}{sep}1016 GV Amsterdam",
                     f"Oudegracht {R.randint(1, 400)}{sep}3511 AZ Utrecht",
                     f"Witte de Withstraat {R.randint(1, 120)}{sep}3012 BR Rotterdam"])
    if kind == "PL":
        return pick([f"ul. Floriańska {R.randint(1, 50)}/{R.randint(1, 20)}{sep}31-019 Kraków",
                     f"ul. Marszałkowska {R.randint(1, 140)} m. {R.randint(1, 80)}{sep}00-514 Warszawa",
                     f"ul. Długa {R.randint(1, 90)}{sep}80-827 Gdańsk"])
    if kind == "TR":
        return pick([f"Bağdat Caddesi No: {R.randint(1, 400)} D: {R.randint(1, 20)}{sep}34728 Kadıköy/İstanbul",
                     f"Atatürk Bulvarı No: {R.randint(1, 300)}/{R.randint(1, 15)}{sep}06680 Çankaya/Ankara",
                     f"Kıbrıs Şehitleri Cd. No: {R.randint(1, 200)}{sep}35220 Alsancak/İzmir"])
    if kind == "VN":
        return pick([f"Số {R.randint(1, 200)} Ngõ {R.randint(1, 99)} Phố Huế, Quận Hai Bà Trưng, Hà Nội",
                     f"{R.randint(1, 300)} Nguyễn Thị Minh Khai, Phường {R.randint(1, 15)}, Quận 3, TP. Hồ Chí Minh",
                     f"{R.randint(1, 150)} Bạch Đằng, Quận Hải Châu, Đà Nẵng"])
    if kind == "NG":
        return pick([f"{R.randint(1, 60)} Marina Rd, Lagos Island, Lagos",
                     f"{R.randint(1, 40)} Admiralty Way, Lekki Phase 1, Lagos",
                     f"Plot {R.randint(100, 999)}, Aminu Kano Crescent, Wuse II, Abuja"])
    raise KeyError(kind)


CITIES = {
    "en": ["Lisbon", "Porto", "Berlin", "Munich", "Kraków", "Warsaw", "Madrid", "Barcelona", "Mexico City", "Bogotá",
           "São Paulo", "Lyon", "Amsterdam", "Utrecht", "Milan", "Turin", "Istanbul", "Hanoi", "Da Nang", "Lagos",
           "Nairobi", "Bengaluru", "Pune", "Austin", "Denver", "Portland", "Toronto", "Vancouver", "Melbourne",
           "Dublin", "Edinburgh", "Manchester", "Seoul", "Osaka", "Valencia", "Athens", "Tallinn", "Boise"],
    "es": ["Valencia", "Sevilla", "Bilbao", "Málaga", "Ciudad de México", "Guadalajara", "Buenos Aires", "Medellín", "Lisboa"],
    "pt": ["Lisboa", "Porto", "Braga", "Coimbra", "Curitiba", "Florianópolis", "Belo Horizonte", "Recife"],
    "de": ["München", "Köln", "Hamburg", "Leipzig", "Wien", "Zürich", "Freiburg", "Stuttgart"],
    "fr": ["Lyon", "Bordeaux", "Nantes", "Lille", "Montréal", "Genève", "Toulouse", "Rennes"],
    "pl": ["Kraków", "Wrocław", "Gdańsk", "Poznań", "Łódź", "Szczecin"],
    "it": ["Milano", "Torino", "Bologna", "Firenze", "Napoli", "Lisbona"],
    "nl": ["Utrecht", "Rotterdam", "Eindhoven", "Groningen", "Den Haag"],
    "tr": ["İzmir", "Ankara", "Antalya", "Bursa", "Berlin"],
    "vi": ["Đà Nẵng", "Hà Nội", "Huế", "Cần Thơ"],
}

MONTHS = {
    "en": "January February March April May June July August September October November December".split(),
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre".split(),
    "pt": "janeiro fevereiro março abril maio junho julho agosto setembro outubro novembro dezembro".split(),
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember".split(),
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split(),
    "pl": "stycznia lutego marca kwietnia maja czerwca lipca sierpnia września października listopada grudnia".split(),
    "it": "gennaio febbraio marzo aprile maggio giugno luglio agosto settembre ottobre novembre dicembre".split(),
    "nl": "januari februari maart april mei juni juli augustus september oktober november december".split(),
    "tr": "Ocak Şubat Mart Nisan Mayıs Haziran Temmuz Ağustos Eylül Ekim Kasım Aralık".split(),
}


def a_date(y0, y1):
    y = R.randint(y0, y1)
    m = R.randint(1, 12)
    d = R.randint(1, 28 if m == 2 else 30)
    return y, m, d


def fmt_date(lang, y, m, d):
    if lang == "us":
        return pick([f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{MONTHS['en'][m-1]} {d}, {y}",
                     f"{MONTHS['en'][m-1][:3]} {d} {y}", f"{y}-{m:02d}-{d:02d}", f"{d} {MONTHS['en'][m-1]} {y}",
                     f"{m:02d}-{d:02d}-{y}"])
    if lang == "uk":
        return pick([f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS['en'][m-1]} {y}", f"{d} {MONTHS['en'][m-1][:3]} {y}"])
    if lang == "iso":
        return f"{y}-{m:02d}-{d:02d}"
    if lang in ("es", "pt"):
        return pick([f"{d:02d}/{m:02d}/{y}", f"{d} de {MONTHS[lang][m-1]} de {y}", f"{d:02d}-{m:02d}-{y}"])
    if lang == "de":
        return pick([f"{d:02d}.{m:02d}.{y}", f"{d}. {MONTHS['de'][m-1]} {y}", f"{d}.{m}.{y}"])
    if lang == "fr":
        return pick([f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS['fr'][m-1]} {y}"])
    if lang == "pl":
        return pick([f"{d:02d}.{m:02d}.{y}", f"{d} {MONTHS['pl'][m-1]} {y}", f"{y}-{m:02d}-{d:02d}"])
    if lang == "it":
        return pick([f"{d:02d}/{m:02d}/{y}", f"{d} {MONTHS['it'][m-1]} {y}"])
    if lang == "nl":
        return pick([f"{d:02d}-{m:02d}-{y}", f"{d} {MONTHS['nl'][m-1]} {y}"])
    if lang == "tr":
        return pick([f"{d:02d}.{m:02d}.{y}", f"{d} {MONTHS['tr'][m-1]} {y}"])
    if lang == "vi":
        return pick([f"{d:02d}/{m:02d}/{y}", f"{d} tháng {m} năm {y}"])
    if lang == "jp":
        return f"{y}年{m}月{d}日"
    raise KeyError(lang)


# ----------------------------------------------------------------------------------------------
# cards, ids, bank numbers
# ----------------------------------------------------------------------------------------------
TEST_CARDS = ["4111111111111111", "4242424242424242", "5555555555554444", "378282246310005", "6011111111111117",
              "5105105105105100", "4000056655665556", "3566002020360505", "30569309025904", "4012888888881881",
              "371449635398431", "2223003122003222", "6200000000000005"]


def group_card(num, sep):
    n = len(num)
    if n == 15:
        parts = [num[:4], num[4:10], num[10:]]
    elif n == 14:
        parts = [num[:4], num[4:10], num[10:]]
    else:
        parts = [num[i:i + 4] for i in range(0, n, 4)]
    return sep.join(parts)


def card(arg=""):
    opts = arg.split("_") if arg else []
    if "test" in opts or (not opts and chance(0.2)):
        num = pick(TEST_CARDS)
    else:
        brand = next((o for o in opts if o in ("visa", "mc", "amex", "disc", "jcb", "diners", "up")), None) or \
            pick(["visa", "visa", "visa", "mc", "mc", "amex", "disc", "jcb", "diners", "up"])
        if brand == "visa":
            num = luhn_complete("4" + digits(5), 16)
        elif brand == "mc":
            num = luhn_complete(pick(["51", "52", "53", "54", "55", "2221", "2310", "2720"]) + digits(2), 16)
        elif brand == "amex":
            num = luhn_complete(pick(["34", "37"]), 15)
        elif brand == "disc":
            num = luhn_complete(pick(["6011", "65", "644"]), 16)
        elif brand == "jcb":
            num = luhn_complete("35" + str(R.randint(28, 89)), 16)
        elif brand == "diners":
            num = luhn_complete(pick(["36", "300", "305"]), 14)
        else:
            num = luhn_complete("62" + digits(4), pick([16, 16, 19]))
    fmt = next((o for o in opts if o in ("plain", "space", "dash")), None) or pick(["plain", "space", "space", "dash"])
    if fmt == "plain" or len(num) == 19:
        return num
    return group_card(num, " " if fmt == "space" else "-")


def luhn_bad16():
    while True:
        s = digits(16, True)
        if not luhn_ok(s):
            return s


def ssn(arg=""):
    while True:
        area = R.randint(1, 899)
        if area != 666:
            break
    g, s = R.randint(1, 99), R.randint(1, 9999)
    fmt = arg or pick(["dash", "dash", "dash", "dash", "space", "plain"])
    if fmt == "space":
        return f"{area:03d} {g:02d} {s:04d}"
    if fmt == "plain":
        return f"{area:03d}{g:02d}{s:04d}"
    return f"{area:03d}-{g:02d}-{s:04d}"


IBAN_SPECS = {  # cc -> function producing a BBAN
    "DE": lambda: pick(["37040044", "10010010", "50010517", "20041133", "70020270", "12030000"]) + digits(10),
    "FR": lambda: pick(["30004", "30003", "20041", "10278", "30002"]) + digits(5) + digits(11) + digits(2),
    "ES": lambda: pick(["2100", "0049", "0182", "0081", "2085"]) + digits(4) + digits(2) + digits(10),
    "PT": lambda: pick(["0035", "0033", "0007", "0010"]) + digits(4) + digits(11) + digits(2),
    "IT": lambda: pick(string.ascii_uppercase) + pick(["03069", "02008", "05034", "03062"]) + digits(5) + digits(12),
    "NL": lambda: pick(["ABNA", "INGB", "RABO", "TRIO", "KNAB", "BUNQ"]) + digits(10),
    "PL": lambda: pick(["10201026", "11402004", "10501445", "24901044", "10901014"]) + digits(16),
    "GB": lambda: pick(["NWBK", "BARC", "LOYD", "HBUK", "MIDL", "MONZ"]) + digits(6) + digits(8),
    "IE": lambda: pick(["AIBK", "BOFI", "IPBS"]) + digits(6) + digits(8),
    "BE": lambda: digits(12),
    "AT": lambda: pick(["12000", "20111", "32000"]) + digits(11),
    "CH": lambda: pick(["00762", "08390", "00230"]) + digits(12),
    "TR": lambda: pick(["00062", "00010", "00046", "00012"]) + "0" + digits(16),
    "LU": lambda: pick(["001", "002", "019"]) + digits(13),
    "SE": lambda: pick(["500", "800", "600"]) + digits(17),
    "DK": lambda: digits(14),
    "FI": lambda: digits(14),
    "NO": lambda: digits(11),
    "BR": lambda: digits(8) + digits(5) + digits(10) + pick("CP") + pick("12"),
}


def iban(arg=""):
    opts = arg.split("_") if arg else []
    cc = next((o for o in opts if o.upper() in IBAN_SPECS and o.upper() == o), None) or \
        pick(["DE", "DE", "FR", "ES", "PT", "IT", "NL", "PL", "GB", "IE", "BE", "AT", "CH", "TR", "LU", "SE", "DK", "FI", "NO", "BR"])
    val = iban_from_bban(cc, IBAN_SPECS[cc]())
    grouped = "grouped" in opts or ("compact" not in opts and chance(0.55))
    if grouped:
        val = " ".join(val[i:i + 4] for i in range(0, len(val), 4))
    return val


def routing():
    known = ["021000021", "026009593", "121000248", "011401533", "322271627", "071000013", "031176110", "256074974"]
    if chance(0.3):
        return pick(known)
    return aba_complete(pick(["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "21", "22",
                              "26", "28", "31", "32"]) + digits(6))


def bank_acct():
    return digits(R.choice([8, 9, 10, 10, 11, 12, 12, 14, 17]), True)


def passport():
    if chance(0.5):
        return digits(9, True)
    return pick("ACEFGHKLMNPRSTXZ") + digits(8)


def dl(state=None):
    state = state or pick(["CA", "NY", "FL", "WA", "IL", "PA", "TX"])
    if state == "CA":
        return pick(string.ascii_uppercase) + digits(7)
    if state == "NY":
        n = digits(9, True)
        return n if chance(0.7) else f"{n[:3]} {n[3:6]} {n[6:]}"
    if state == "FL":
        return f"{pick(string.ascii_uppercase)}{_d(3)}-{_d(3)}-{_d(2)}-{_d(3)}-{_d(1)}"
    if state == "WA":
        return "WDL" + rchars(UPPER_ALNUM, 9)
    if state == "IL":
        l, n = pick(string.ascii_uppercase), digits(11)
        return l + n if chance(0.5) else f"{l}{n[:3]}-{n[3:7]}-{n[7:]}"
    if state == "PA":
        n = digits(8, True)
        return n if chance(0.6) else f"{n[:2]} {n[2:5]} {n[5:]}"
    if state == "TX":
        return digits(8, True)
    raise KeyError(state)


# ----------------------------------------------------------------------------------------------
# network
# ----------------------------------------------------------------------------------------------
def ipv4_priv():
    k = R.randrange(4)
    if k == 0:
        return f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if k == 1:
        return f"172.{R.randint(16, 31)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if k == 2:
        return f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}"
    return f"100.{R.randint(64, 127)}.{R.randint(0, 255)}.{R.randint(1, 254)}"


def ipv4_pub():
    first = pick([3, 13, 18, 23, 34, 35, 41, 44, 45, 52, 54, 62, 77, 81, 89, 91, 102, 104, 138, 142, 151, 159, 178, 185,
                  188, 193, 197, 203, 212, 217])
    return f"{first}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"


def ipv6():
    k = R.randrange(5)
    g = lambda: format(R.randint(0, 0xFFFF), "x")
    if k == 0:
        return "2001:db8:" + ":".join(g() for _ in range(2)) + "::" + g()
    if k == 1:
        return ":".join([pick(["2a02", "2a01", "2604", "2607", "2001", "2a00", "2400"])] + [g() for _ in range(7)])
    if k == 2:
        return f"fe80::{g()}:{g()}ff:fe{R.randint(0, 255):02x}:{g()}"
    if k == 3:
        return f"fd{R.randint(0, 255):02x}:{g()}:{g()}:{g()}::{g()}"
    return f"{pick(['2600', '2a03', '2c0f', '2406'])}:{g()}:{g()}::{g()}:{g()}"


# ----------------------------------------------------------------------------------------------
# secrets
# ----------------------------------------------------------------------------------------------
def password(arg=""):
    sym = "!@#$%^*-_+=?~"
    if arg == "url":
        k = R.randrange(3)
        return [rchars(ALNUM, R.randint(12, 24)), token_urlsafe(12).replace("-", "x").replace("_", "y"),
                pick(["Pg", "Db", "Svc", "Rpt"]) + rchars(ALNUM, 10) + str(R.randint(10, 99))][k]
    k = R.randrange(9)
    if k == 0:
        return pick(["Winter", "Summer", "Spring", "Autumn", "Welcome", "Acme", "Changeme", "Portal", "Helpdesk",
                     "Verano", "Sommer", "Lato", "Inverno", "Bienvenue"]) + str(R.randint(2019, 2025)) + pick("!#$?*")
    if k == 1:
        w = pick(["maple", "rocket", "lantern", "otter", "violet", "cobalt", "harbor", "pixel", "tundra", "falcon",
                  "mango", "quartz", "sierra", "nimbus", "ember"])
        w2 = pick(["Tiger", "Stone", "River", "Cloud", "Pepper", "Comet", "Willow", "Bridge", "Ocean"])
        return f"{w}-{w2}-{R.randint(10, 99)}-{pick(['bell', 'kite', 'moss', 'dune', 'lamp'])}"
    if k == 2:
        return token_urlsafe(12)
    if k == 3:
        base = rchars(ALNUM, R.randint(10, 16))
        i = R.randint(1, len(base) - 2)
        return base[:i] + pick(sym) + base[i:] + pick("!#$%*0123456789")
    if k == 4:
        return pick(["Tr0ub4dor", "P@ssw0rd", "Qwerty", "S3cure", "Adm1n", "R3set", "L3tM3In", "Passw0rd"]) + \
            pick(["#9", "!2024", "_prod", "99!", "$$", "#x7"])
    if k == 5:
        return rchars(ALNUM + "!#%*", 20)
    if k == 6:
        return pick(["Kx", "Zq", "Vt", "Hm", "Np"]) + rchars(string.digits, 2) + rchars(string.ascii_lowercase, 4) + \
            pick("!#$%") + rchars(string.ascii_uppercase, 3) + rchars(string.digits, 2)
    if k == 7:
        return token_hex(8)
    return pick(["Contraseña", "Haslo", "Sifre", "Wachtwoord", "Motdepasse", "Senha", "Matkhau"]) + \
        str(R.randint(10, 9999)) + pick("!#*")


def wifi_pw():
    return pick([f"{pick(['GuestNet', 'Acme', 'Cafe', 'Office', 'Lobby', 'Blue', 'Kestrel'])}{pick(['#', '!', '-', '_'])}{R.randint(2020, 2025)}",
                 f"{pick(['bluebird', 'coffee', 'sunflower', 'pinecone', 'ducks', 'nimbus'])}-{pick(['coffee', 'garden', 'rocket', 'river'])}-{R.randint(10, 99)}",
                 rchars(ALNUM, 12), f"{pick(['Welcome', 'Bem-vindo', 'Willkommen', 'Bienvenido', 'Benvenuti'])}{R.randint(100, 999)}!"])


def b64_random(nbytes):
    return base64.b64encode(token_bytes(nbytes)).decode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt():
    alg = pick(["HS256", "RS256", "ES256"])
    header = json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode()
    payload = {"sub": str(R.randint(10000, 999999)), "iat": R.randint(1700000000, 1720000000)}
    payload["exp"] = payload["iat"] + pick([900, 3600, 86400])
    if chance(0.5):
        payload["role"] = pick(["admin", "service", "user", "billing"])
    if chance(0.4):
        payload["iss"] = pick(["https://auth.acme.io", "kestrel-api", "https://login.northwind.io/"])
    body = json.dumps(payload, separators=(",", ":")).encode()
    siglen = 32 if alg == "HS256" else (64 if alg == "ES256" else 256)
    return f"{b64url(header)}.{b64url(body)}.{b64url(token_bytes(siglen))}"


def pem(kind=None):
    kind = kind or pick(["RSA", "OPENSSH", "EC", "PKCS8"])
    if kind == "RSA":
        head, body = "RSA PRIVATE KEY", "MIIEpAIBAAKCAQEA" + b64_random(R.randint(180, 260))
    elif kind == "EC":
        head, body = "EC PRIVATE KEY", "MHcCAQEEI" + b64_random(110)
    elif kind == "OPENSSH":
        head, body = "OPENSSH PRIVATE KEY", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW" + b64_random(200)
    else:
        head, body = "PRIVATE KEY", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ" + b64_random(220)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {head}-----\n" + "\n".join(lines) + f"\n-----END {head}-----"


SECRET_GENS = {
    "aws_akid": lambda: pick(["AKIA", "AKIA", "ASIA"]) + rchars(string.ascii_uppercase + "234567", 16),
    "aws_secret": lambda: rchars(ALNUM + "+/", 40),
    "aws_session": lambda: "IQoJb3JpZ2luX2VjE" + rchars(ALNUM + "+/", R.randint(300, 380)) + "==",
    "ghp": lambda: "ghp_" + rchars(ALNUM, 36),
    "gho": lambda: "gho_" + rchars(ALNUM, 36),
    "ghs": lambda: "ghs_" + rchars(ALNUM, 36),
    "ghpat": lambda: "github_pat_11" + rchars(UPPER_ALNUM, 20) + "_" + rchars(ALNUM, 59),
    "glpat": lambda: "glpat-" + rchars(ALNUM + "-_", 20),
    "xoxb": lambda: f"xoxb-{digits(12, True)}-{digits(13, True)}-{rchars(ALNUM, 24)}",
    "xoxp": lambda: f"xoxp-{digits(12, True)}-{digits(12, True)}-{digits(13, True)}-{token_hex(16)}",
    "xapp": lambda: f"xapp-1-A{rchars(UPPER_ALNUM, 10)}-{digits(13, True)}-{token_hex(32)}",
    "slack_webhook": lambda: f"https://hooks.slack.com/services/T{rchars(UPPER_ALNUM, 8)}/B{rchars(UPPER_ALNUM, 10)}/{rchars(ALNUM, 24)}",
    "sk_live": lambda: "sk_live_" + rchars(ALNUM, pick([24, 99])),
    "sk_test": lambda: "sk_test_" + rchars(ALNUM, pick([24, 99])),
    "rk_live": lambda: "rk_live_" + rchars(ALNUM, pick([24, 99])),
    "whsec": lambda: "whsec_" + rchars(ALNUM, 32),
    "google_key": lambda: "AIza" + rchars(ALNUM + "-_", 35),
    "openai_key": lambda: pick(["sk-proj-" + rchars(ALNUM + "-_", 124) + "T3BlbkFJ" + rchars(ALNUM + "-_", 20),
                                "sk-" + rchars(ALNUM, 20) + "T3BlbkFJ" + rchars(ALNUM, 20)]),
    "anthropic_key": lambda: "sk-ant-api03-" + rchars(ALNUM + "-_", 93) + "AA",
    "npm_token": lambda: "npm_" + rchars(ALNUM, 36),
    "pypi": lambda: "pypi-AgEIcHlwaS5vcmcCJ" + rchars(ALNUM + "-_", 140),
    "twilio_token": lambda: token_hex(16),
    "twilio_sk": lambda: "SK" + token_hex(16),
    "sendgrid": lambda: "SG." + rchars(ALNUM + "-_", 22) + "." + rchars(ALNUM + "-_", 43),
    "mailgun": lambda: "key-" + token_hex(16),
    "dd_api": lambda: token_hex(16),
    "dd_app": lambda: token_hex(20),
    "azure_key": lambda: b64_random(64),
    "hex32": lambda: token_hex(16),
    "hex64": lambda: token_hex(32),
    "shopify": lambda: "shpat_" + token_hex(16),
    "dop": lambda: "dop_v1_" + token_hex(32),
    "hf": lambda: "hf_" + rchars(string.ascii_letters, 34),
    "linear": lambda: "lin_api_" + rchars(ALNUM, 40),
    "notion": lambda: "secret_" + rchars(ALNUM, 43),
    "telegram": lambda: f"{digits(10, True)}:AA{rchars(ALNUM + '-_', 33)}",
    "discord": lambda: rchars(ALNUM, 24) + "." + rchars(ALNUM + "-_", 6) + "." + rchars(ALNUM + "-_", 38),
    "atlassian": lambda: "ATATT3xFfGF0" + rchars(ALNUM + "-_", 170) + "=" + rchars(UPPER_ALNUM, 8),
    "sentry_auth": lambda: "sntrys_" + rchars(ALNUM, 120),
    "doppler": lambda: "dp.st.prd." + rchars(ALNUM, 43),
    "urlsafe": lambda: token_urlsafe(32),
    "jwt": jwt,
    "pem": pem,
    "password": password,
    "wifi_pw": wifi_pw,
}


# ----------------------------------------------------------------------------------------------
# non-sensitive look-alikes (hard negatives)
# ----------------------------------------------------------------------------------------------
BICS = ["DEUTDEFFXXX", "COBADEFFXXX", "BNPAFRPPXXX", "CAIXESBBXXX", "BSCHESMM", "CGDIPTPL", "UNCRITMM", "INGBNL2A",
        "ABNANL2A", "PKOPPLPW", "TGBATRIS", "NWBKGB2L", "CHASUS33", "BOFAUS3N", "RABONL2U", "BPOTBEB1", "VCBVVNVX",
        "BCOMPTPL", "SOGEFRPP", "BKTRUS33XXX", "ISBKTRIS", "BREXPLPWMBK"]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "ap-northeast-1", "sa-east-1",
           "europe-west3", "us-central1", "asia-southeast1", "westeurope", "eastus2", "eu-north-1", "ca-central-1"]
DCS = ["fra1", "ams3", "iad2", "dfw-dc2", "sjc1", "lhr-edge-4", "nyc3", "sin1", "waw-dc1", "gru2"]
HOSTS = ["api-prod-7", "db-replica-3", "worker-12", "edge-lb-2", "kafka-broker-4", "redis-cache-01", "search-node-6",
         "ip-10-0-12-34.ec2.internal", "web-eu-3", "batch-runner-9", "ingest-02.prod", "pg-primary-1", "vault-0",
         "gitlab-runner-5", "bastion-2", "payments-api-4", "etl-1.dc2.internal"]
SVCS = ["checkout-api", "payments-worker", "auth-service", "search-indexer", "notification-svc", "billing-core",
        "ledger", "onboarding-bff", "crm-sync", "ticket-router", "payout-engine", "kyc-checker", "hris-sync"]
PRODUCTS = ["Jenkins", "Cassandra", "Ada", "Hudson", "Kafka", "Athena", "Delphi", "Mercury", "Jasper", "Alexa",
            "Luigi", "Sidekiq", "Phoenix", "Hermes", "Minerva", "Ruby", "Celery", "Sinatra", "Django", "Ariel"]
COMPANIES = ["Globex", "Initech", "Hooli", "Umbrella Corp", "Acme Corp", "Northwind Traders", "Contoso", "Soylent Ltd",
             "Tidewater GmbH", "Bluefin AG", "Mareva Lda", "Ferrotech S.p.A.", "Polaris Sp. z o.o.", "Anadolu Teknoloji A.Ş.",
             "Tulp Data B.V.", "Saigon Labs JSC", "Kestrel Inc."]
OFFICES = ["Berlin", "Lisbon", "London", "São Paulo", "Warsaw", "Austin", "Hanoi", "Istanbul", "Amsterdam", "Milan",
           "Madrid", "Paris", "Dublin", "Toronto", "Lagos", "Bengaluru", "Kraków", "Porto"]
PLACEHOLDERS = ["&lt;redacted&gt;", "********", "YOUR_API_KEY", "xoxb-your-token", "${DB_PASSWORD}",
                "{{ secrets.API_TOKEN }}", "&lt;your-password-here&gt;", "REPLACE_ME", "changeme-in-vault", "***",
                "[REDACTED]", "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX", "${{ secrets.SLACK_WEBHOOK }}", "%(password)s",
                "&lt;TOKEN&gt;", "xxxxxxxx", "$GITHUB_TOKEN", "{{ .Values.db.password }}", "•••••••••"]
REPOS = ["payments-service", "infra-live", "web-app", "mobile", "data-pipelines", "hris-integrations", "support-bot",
         "terraform-modules", "crm-sync", "docs"]
ORGS = ["acme", "northwind-io", "globex-eng", "kestrel-app", "tidewater"]
CHANNELS = ["incidents", "alerts-prod", "support-escalations", "hr-ops", "finance-payouts", "ci-builds", "crm-leads",
            "deploys", "sec-ops", "people-team"]
PORTS = [22, 443, 5432, 6379, 8080, 8443, 9200, 3306, 27017, 9090, 9100, 2379, 11211, 5672, 15672, 3000, 8000, 25, 587, 6443]


def uuid4():
    h = token_hex(16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{pick('89ab')}{h[17:20]}-{h[20:32]}"


def ts():
    y, m, d = a_date(2024, 2025)
    hh, mm, ss = R.randint(0, 23), R.randint(0, 59), R.randint(0, 59)
    return pick([f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}Z", f"{y}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d} UTC",
                 f"{y}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}.{R.randint(0, 999):03d}+00:00",
                 f"{MONTHS['en'][m-1][:3]} {d} {hh:02d}:{mm:02d}:{ss:02d}"])


def future_date(lang="us"):
    y, m, d = a_date(2024, 2026)
    return fmt_date(lang, y, m, d)


def slackid():
    return pick(["U0", "U04", "U05", "W0"]) + rchars(UPPER_ALNUM, R.randint(7, 8))


def ninexx():
    return f"9{R.randint(0, 99):02d}-{R.randint(70, 99):02d}-{_d(4)}"


NEG_GENS = {
    "ticket": lambda o: str(R.randint(10000, 999999)),
    "order": lambda o: pick([digits(R.randint(6, 9), True), f"ORD-{R.randint(2023, 2025)}-{_d(6)}", f"A{_d(8)}",
                             f"{_d(3)}-{_d(7)}-{_d(7)}"]),
    "build": lambda o: str(R.randint(100, 48000)),
    "pr": lambda o: str(R.randint(100, 9800)),
    "num": lambda o: digits(int(o[0]) if o else 5, True),
    "port": lambda o: str(pick(PORTS)),
    "ts": lambda o: ts(),
    "epoch": lambda o: str(R.randint(1700000000, 1760000000)) + (str(R.randint(100, 999)) if chance(0.5) else ""),
    "date": lambda o: future_date(o[0] if o else pick(["us", "iso", "uk"])),
    "uuid": lambda o: uuid4(),
    "traceid": lambda o: token_hex(16),
    "spanid": lambda o: token_hex(8),
    "sha": lambda o: token_hex(20),
    "shortsha": lambda o: token_hex(4)[:7],
    "sha256": lambda o: token_hex(32),
    "md5": lambda o: token_hex(16),
    "sha1": lambda o: token_hex(20),
    "awsacct": lambda o: digits(12, True),
    "bic": lambda o: pick(BICS),
    "slackid": lambda o: slackid(),
    "mention": lambda o: f"<@{slackid()}>",
    "chanlink": lambda o: f"<#C0{rchars(UPPER_ALNUM, 8)}|{pick(CHANNELS)}>",
    "last4": lambda o: _d(4),
    "expiry": lambda o: pick([f"{R.randint(1, 12):02d}/{R.randint(25, 31)}", f"{R.randint(1, 12):02d}/20{R.randint(25, 31)}"]),
    "cvv": lambda o: _d(3),
    "version4": lambda o: f"{R.randint(1, 12)}.{R.randint(0, 60)}.{R.randint(0, 20)}.{R.randint(0, 999)}",
    "semver": lambda o: f"{R.randint(0, 9)}.{R.randint(0, 40)}.{R.randint(0, 30)}",
    "loopback": lambda o: pick(["127.0.0.1", "127.0.0.1", "127.0.1.1", "127.0.0.53", "::1"]),
    "netmask": lambda o: pick(["255.255.255.0", "255.255.0.0", "255.255.240.0", "255.255.255.128", "255.255.255.252"]),
    "region": lambda o: pick(REGIONS),
    "dc": lambda o: pick(DCS),
    "host": lambda o: pick(HOSTS),
    "shorthost": lambda o: pick([h for h in HOSTS if "." not in h]),
    "svc": lambda o: pick(SVCS),
    "product": lambda o: pick(PRODUCTS),
    "company": lambda o: pick(COMPANIES),
    "office": lambda o: pick(OFFICES),
    "zoomid": lambda o: pick([f"8{_d(2)} {_d(4)} {_d(4)}", f"9{_d(2)} {_d(3)} {_d(4)}", f"8{_d(9)}"]),
    "meetcode": lambda o: f"{rchars(string.ascii_lowercase, 3)}-{rchars(string.ascii_lowercase, 4)}-{rchars(string.ascii_lowercase, 3)}",
    "ninexx": lambda o: ninexx(),
    "luhnbad": lambda o: luhn_bad16(),
    "pk_live": lambda o: "pk_live_" + rchars(ALNUM, pick([24, 99])),
    "stripeid": lambda o: rchars(ALNUM, 14),
    "acsid": lambda o: "AC" + token_hex(16),
    "sshpub": lambda o: pick(["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + rchars(ALNUM + "+/", 43),
                              "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ" + rchars(ALNUM + "+/", 180)]),
    "cert": lambda o: "-----BEGIN CERTIFICATE-----\n" + "\n".join(
        ("MIIDdzCCAl+gAwIBAgIU" + b64_random(180))[i:i + 64] for i in range(0, 192, 64)) + "\n-----END CERTIFICATE-----",
    "pubkey": lambda o: "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + b64_random(30) +
                        "\n" + b64_random(45) + "\n-----END PUBLIC KEY-----",
    "placeholder": lambda o: pick(PLACEHOLDERS),
    "repo": lambda o: pick(REPOS),
    "org": lambda o: pick(ORGS),
    "channel": lambda o: pick(CHANNELS),
    "domain": lambda o: pick(WORK_DOMAINS),
    "amount": lambda o: f"{R.randint(12, 98000):,}.{R.randint(0, 99):02d}",
    "amount_eu": lambda o: f"{R.randint(12, 98000):,}".replace(",", ".") + f",{R.randint(0, 99):02d}",
    "jira": lambda o: f"{pick(['OPS', 'SEC', 'HR', 'FIN', 'SUP', 'PLAT', 'CRM', 'INC'])}-{R.randint(100, 9999)}",
    "runid": lambda o: "run-" + rchars(ALNUM, 16),
    "authcode": lambda o: rchars(UPPER_ALNUM, 6),
    "ups": lambda o: rchars(UPPER_ALNUM, 16),
    "mrn": lambda o: digits(8, True),
    "b64": lambda o: b64_random(int(o[0]) if o else 30),
    "bcrypt": lambda o: "$2b$12$" + rchars(ALNUM + "./", 53),
    "digits": lambda o: digits(int(o[0]) if o else 6),
    "pct": lambda o: f"{R.randint(80, 99)}.{R.randint(0, 9)}",
    "dur": lambda o: f"{R.randint(1, 59)}m {R.randint(0, 59):02d}s",
    "hexshort": lambda o: token_hex(4),
    "k8spod": lambda o: f"{pick(SVCS)}-{token_hex(4)[:7]}-{rchars(LOWER_ALNUM, 5)}",
    "imgdigest": lambda o: "sha256:" + token_hex(32),
    "iban_masked": lambda o: pick(["DE", "FR", "NL", "ES", "PT", "IT", "PL"]) + "** **** **** **** " + _d(4),
    "ssn_masked": lambda o: pick(["***-**-", "XXX-XX-", "xxx-xx-"]) + _d(4),
    "mac": lambda o: ":".join(f"{R.randint(0, 255):02x}" for _ in range(6)),
    "asn": lambda o: f"AS{R.randint(1000, 65000)}",
    "stripe_evt": lambda o: "evt_" + rchars(ALNUM, 24),
    "twilio_sm": lambda o: "SM" + token_hex(16),
    "gtm": lambda o: "GTM-" + rchars(UPPER_ALNUM, 7),
    "ga": lambda o: f"G-{rchars(UPPER_ALNUM, 10)}",
    "sentry_dsn_pub": lambda o: token_hex(16),
    "otp_len": lambda o: str(pick([6, 8])),
}


# ----------------------------------------------------------------------------------------------
# template engine
# ----------------------------------------------------------------------------------------------
PH = re.compile(r"\[\[([a-z0-9_]+)(?:\.([A-Za-z0-9_]+))?(?::([a-z0-9]+))?\]\]")
PERSON_KINDS = {"person", "given", "titled", "email", "family_only"}
ORIGINS = set(NAMES) | set(SCRIPT_NAMES)


ORIGIN_ALIAS = {"br": "pt", "mx": "es", "us": "en", "uk": "en", "vn": "vi"}


def _origin(opts):
    for o in opts:
        o = ORIGIN_ALIAS.get(o, o)
        if o in ORIGINS:
            return o
    return None


def g_person(ctx, opts, tag):
    p = ctx["persons"].get(tag) if tag else None
    if p is None:
        p = Person(_origin(opts))
    if "mid" in opts:
        s = p.with_middle()
    elif "lf" in opts:
        s = p.last_first()
    else:
        s = p.full()
    if "lower" in opts:
        s = s.lower()
    elif "upper" in opts:
        s = strip_accents(s).upper() if p.origin not in SCRIPT_NAMES else s
    return s, "PERSON"


def g_titled(ctx, opts, tag):
    p = ctx["persons"].get(tag) if tag else None
    if p is None:
        p = Person(_origin(opts) or pick(["en", "ng", "de", "es", "fr", "in", "it", "pl", "nl", "pt"]))
    return p.titled(), "PERSON"


def g_given(ctx, opts, tag):
    p = ctx["persons"].get(tag) if tag else None
    if p is None:
        p = Person(_origin(opts))
    s = p.given_only()
    if "lower" in opts:
        s = s.lower()
    return s, None


def g_email(ctx, opts, tag):
    p = ctx["persons"].get(tag) if tag else None
    if "role" in opts:
        e = f"{pick(ROLE_LOCALS)}@{pick(WORK_DOMAINS)}"
    else:
        if p is None:
            p = Person(pick(LATIN_ORIGINS))
        personal = "personal" in opts or ("work" not in opts and chance(0.45))
        e = f"{p.email_local()}@{pick(PERSONAL_DOMAINS if personal else WORK_DOMAINS)}"
    if "urlenc" in opts:
        e = e.replace("@", "%40")
    if "upper" in opts:
        e = e[0].upper() + e[1:]
    return e, "EMAIL_ADDRESS"


def g_phone(ctx, opts, tag):
    return phone(opts[0] if opts else None), "PHONE_NUMBER"


def g_address(ctx, opts, tag):
    kind = next((o for o in opts if o.isupper()), None)
    return address(kind, "multi" in opts), "LOCATION"


def g_city(ctx, opts, tag):
    return pick(CITIES[opts[0] if opts else "en"]), "LOCATION"


def g_dob(ctx, opts, tag):
    y, m, d = a_date(1948, 2006)
    return fmt_date(opts[0] if opts else pick(["us", "us", "iso", "uk"]), y, m, d), "DATE_OF_BIRTH"


def g_ipv4(ctx, opts, tag):
    if "pub" in opts:
        return ipv4_pub(), "IP_ADDRESS"
    if "priv" in opts:
        return ipv4_priv(), "IP_ADDRESS"
    return (ipv4_pub() if chance(0.5) else ipv4_priv()), "IP_ADDRESS"


def g_basic(ctx, opts, tag):
    user = pick(["admin", "deploy", "svc-billing", "api", "grafana", "jenkins", "partner-acme", "webhook"])
    return base64.b64encode(f"{user}:{password('url')}".encode()).decode(), "SECRET"


def g_k8s(ctx, opts, tag):
    val = opts[0] if opts else None
    if val == "user":
        raw = pick(["postgres", "admin", "app_rw", "billing", "svc_payments"])
    elif val == "host":
        raw = pick(["pg-primary.prod.svc", "10.0.4.17", "mysql.internal"])
    else:
        raw = password("url")
    return base64.b64encode(raw.encode()).decode(), "SECRET"


GEN = {
    "person": g_person, "titled": g_titled, "given": g_given, "email": g_email,
    "phone": g_phone, "address": g_address, "city": g_city, "dob": g_dob,
    "ipv4": g_ipv4,
    "ipv6": lambda c, o, t: (ipv6(), "IP_ADDRESS"),
    "card": lambda c, o, t: (card("_".join(o)), "CREDIT_CARD"),
    "ssn": lambda c, o, t: (ssn(o[0] if o else ""), "US_SSN"),
    "iban": lambda c, o, t: (iban("_".join(o)), "IBAN_CODE"),
    "routing": lambda c, o, t: (routing(), "US_BANK_NUMBER"),
    "acct": lambda c, o, t: (bank_acct(), "US_BANK_NUMBER"),
    "passport": lambda c, o, t: (passport(), "US_PASSPORT"),
    "dl": lambda c, o, t: (dl(o[0] if o else None), "US_DRIVER_LICENSE"),
    "basic": g_basic,
    "k8s": g_k8s,
}
for _k, _f in SECRET_GENS.items():
    if _k == "password":
        GEN[_k] = (lambda f: lambda c, o, t: (f("_".join(o)), "SECRET"))(_f)
    else:
        GEN[_k] = (lambda f: lambda c, o, t: (f(), "SECRET"))(_f)
for _k, _f in NEG_GENS.items():
    assert _k not in GEN, _k
    GEN[_k] = (lambda f: lambda c, o, t: (f(o), None))(_f)


def render(tpl):
    ctx = {"persons": {}, "cache": {}}
    # pre-pass: one Person per tag, origin taken from whichever person-ish placeholder names one
    origins = {}
    for m in PH.finditer(tpl):
        kind, arg, tag = m.groups()
        if tag and kind in PERSON_KINDS:
            o = _origin(arg.split("_") if arg else [])
            if o or tag not in origins:
                origins[tag] = o or origins.get(tag)
    for tag, o in origins.items():
        ctx["persons"][tag] = Person(o)
    out, spans, pos, last = [], [], 0, 0
    for m in PH.finditer(tpl):
        lit = tpl[last:m.start()]
        out.append(lit)
        pos += len(lit)
        kind, arg, tag = m.groups()
        if kind not in GEN:
            raise KeyError(f"unknown kind {kind!r} in template: {tpl[:60]!r}")
        opts = arg.split("_") if arg else []
        key = (kind, arg, tag)
        if tag and key in ctx["cache"]:
            val, label = ctx["cache"][key]
        else:
            val, label = GEN[kind](ctx, opts, tag)
            if tag:
                ctx["cache"][key] = (val, label)
        out.append(val)
        if label:
            spans.append({"start": pos, "end": pos + len(val), "label": label})
        pos += len(val)
        last = m.end()
    out.append(tpl[last:])
    text = "".join(out)
    for s in spans:  # offsets were computed while building; this only guards against engine bugs
        assert text[s["start"]:s["end"]].strip() == text[s["start"]:s["end"]], (s, text)
    return text, spans


# ----------------------------------------------------------------------------------------------
# POSITIVE templates (every one yields at least one span)
# ----------------------------------------------------------------------------------------------
POS = [
    # --- alerting / monitoring bots -------------------------------------------------------------
    ":rotating_light: *[Triggered]* #[[num.5]] High CPU on `[[host]]` ([[ipv4.priv]])\nService: [[svc]] • Urgency: high • Assigned: [[mention]]\n<https://acme.pagerduty.com/incidents/Q[[ups]]|View incident>",
    "[P2] Monitor alert: disk usage &gt; 90% on host:[[host]] (ip:[[ipv4.priv]]) — [[region]] — value [[pct]]% at [[ts]]",
    "fail2ban@[[host]]: banned [[ipv4.pub]] after 6 failed ssh attempts (port 22). Also seen from [[ipv4.pub]] and [[ipv6]] in the last hour",
    "Cloudflare WAF: blocked 1,204 requests from [[ipv4.pub]]:[[port]] (rule 100015, ray [[hexshort]][[hexshort]]) — [[asn]]",
    "*[FIRING:2] NodeDown* (job=node severity=critical)\n• instance=[[ipv4.priv]]:9100\n• instance=[[[ipv6]]]:9100\nRunbook: <https://runbooks.acme.io/node-down|node-down>",
    "🔴 *api.[[domain]]* is DOWN (timeout after 30s). Probe [[ipv4.pub]] ([[region]]) could not reach origin [[ipv4.pub]]:443. Local resolver 127.0.0.53 answered fine.",
    "Sentry • `NullPointerException` in PaymentService.charge\nuser: {id: [[num.6]], email: [[email]], ip_address: [[ipv4.pub]]}\nrelease [[semver]] • 14 events • first seen [[ts]]",
    "Okta: suspicious sign-in for [[email.work]] from [[ipv4.pub]] ([[asn]]) — MFA push denied. Session [[uuid]] revoked.",
    "Tailscale: new device `laptop-[[num.4]]` joined the tailnet — [[ipv4.priv]] / [[ipv6]] — approved by [[mention]]",
    "kube-bot: Pod `[[k8spod]]` CrashLoopBackOff on node ip-10-0-12-34 (InternalIP [[ipv4.priv]]) — exit code 137, restarts 12",
    "Datadog [Warn] `nginx.net.request_per_s` spiking: top client [[ipv4.pub]] (3.2k rps), next [[ipv4.pub]], [[ipv4.pub]]. Netmask on the LB pool is 255.255.255.0, nothing changed there.",
    "GuardDuty finding: UnauthorizedAccess:EC2/SSHBruteForce — target [[ipv4.priv]] in account [[awsacct]] ([[region]]), actor [[ipv4.pub]]",
    "CloudWatch alarm *RDS-FreeStorage-Low* in [[region]]: writer endpoint resolved to [[ipv4.priv]], reader [[ipv4.priv]]. Current value 4.1 GiB.",
    "Grafana alert resolved ✅ — `haproxy backend down` — server web-3 [[ipv4.priv]]:8080 back in rotation after [[dur]]",
    "Uptime Kuma: [[svc]] ([[ipv6]]) ping 412 ms &gt; threshold 300 ms (checked [[ts]])",
    "Snyk/WAF summary: 3 IPs auto-blocked today → [[ipv4.pub]], [[ipv4.pub]], [[ipv4.pub]] (all from [[asn]])",
    # --- CI bots leaking tokens --------------------------------------------------------------------
    "GitHub Actions • `deploy.yml` failed on `main`\n```\nRun env | sort\nAWS_ACCESS_KEY_ID=[[aws_akid]]\nAWS_DEFAULT_REGION=[[region]]\nAWS_SECRET_ACCESS_KEY=[[aws_secret]]\nCI=true\nGITHUB_TOKEN=***\nNODE_VERSION=20.11.1\n```",
    "Jenkins build #[[build]] FAILED (api-gateway)\n```\n+ curl -sf -H 'Authorization: Bearer [[jwt]]' https://internal.[[domain]]/health\ncurl: (22) The requested URL returned error: 503\n```",
    "circleci: step `publish` printed `npm config set //registry.npmjs.org/:_authToken=[[npm_token]]` in plain text, please rotate",
    "build log from gitlab-runner-5:\n```\n$ echo [[ghp]] | docker login ghcr.io -u deploy-bot --password-stdin\nLogin Succeeded\n```",
    "terraform plan output has it in clear 😬\n```\n  + resource \"aws_db_instance\" \"orders\" {\n      + username = \"orders_admin\"\n      + password = \"[[password]]\"\n      + port     = 5432\n```",
    "GitLab CI job [[num.8]]: `CI_JOB_TOKEN` is masked but DEPLOY_TOKEN=[[glpat]] got echoed by the debug step",
    "```\nError: connect ECONNREFUSED [[ipv4.priv]]:5432\n    at TCPConnectWrap.afterConnect\nDATABASE_URL=postgres://app:[[password.url]]@[[ipv4.priv]]:5432/orders\n```",
    "heads up the helm values in the PR contain `slack_webhook_url: [[slack_webhook]]` — that one posts to #[[channel]]",
    "stripe-cli log: `using API key [[sk_live]]` (live mode) — created cus_[[stripeid]] and pi_[[stripeid]]",
    "openai.AuthenticationError: Error code: 401 - Incorrect API key provided: [[openai_key]]. You can find your API key at https://platform.openai.com/account/api-keys.",
    "ANTHROPIC_API_KEY=[[anthropic_key]] is in the notebook output cell 14, can someone clear it",
    "CI secret scan: `SENDGRID_API_KEY=[[sendgrid]]` found in `services/notify/.env` (commit [[shortsha]])",
    "```\nTWILIO_ACCOUNT_SID=[[acsid]]\nTWILIO_AUTH_TOKEN=[[twilio_token]]\nTWILIO_FROM=[[phone.us]]\n```\nthis was in the support-bot logs",
    "k8s secret someone applied from their laptop:\n```\napiVersion: v1\nkind: Secret\nmetadata:\n  name: payments-db\ntype: Opaque\ndata:\n  username: [[k8s.user]]\n  password: [[k8s]]\n```",
    "found this in the #[[channel]] history, deleting now:\n```\n[[pem]]\n```",
    "Geocoding fails only in prod: `https://maps.googleapis.com/maps/api/geocode/json?address=Main+St&amp;key=[[google_key]]`",
    "DD_API_KEY=[[dd_api]] DD_APP_KEY=[[dd_app]] — these were baked into the AMI, rotating",
    "`DefaultEndpointsProtocol=https;AccountName=acmeprodlogs;AccountKey=[[azure_key]];EndpointSuffix=core.windows.net`",
    "HTTP dump from the partner webhook:\n```\nPOST /v2/hooks/orders HTTP/1.1\nHost: hooks.[[domain]]\nAuthorization: Basic [[basic]]\nX-Request-Id: [[uuid]]\nContent-Type: application/json\n```",
    "MAILGUN_API_KEY=[[mailgun]] and the signing key is [[hex32]] (from the old heroku config)",
    "the bolt app won't start: `SLACK_BOT_TOKEN=[[xoxb]]` `SLACK_APP_TOKEN=[[xapp]]` look right to me?",
    ".env from the staging box (before we moved to vault):\n```\nSTRIPE_SECRET_KEY=[[sk_live]]\nSTRIPE_WEBHOOK_SECRET=[[whsec]]\nSTRIPE_PUBLISHABLE_KEY=[[pk_live]]\nREDIS_URL=redis://:[[password.url]]@[[ipv4.priv]]:6379/0\nLOG_LEVEL=debug\n```",
    "pypi upload failed, token was `[[pypi]]` — is it scoped to the project?",
    "Dependabot can't pull the private registry: `//npm.pkg.github.com/:_authToken=[[ghpat]]`",
    "bot: rotated `DIGITALOCEAN_TOKEN` — old value [[dop]] is now revoked, new one in 1Password",
    "HF_TOKEN=[[hf]] python scripts/pull_model.py  ← this line is in the README now lol",
    "Shopify app creds for the support sync: API secret in vault, but the admin token `[[shopify]]` is hardcoded in sync.py",
    "LINEAR_API_KEY=[[linear]] / NOTION_TOKEN=[[notion]] (intake bot, pls move to secrets manager)",
    "telegram alert bot token is [[telegram]], chat id -100[[num.10]]",
    "sts output:\n```\n\"Credentials\": {\n  \"AccessKeyId\": \"[[aws_akid]]\",\n  \"SecretAccessKey\": \"[[aws_secret]]\",\n  \"SessionToken\": \"[[aws_session]]\",\n  \"Expiration\": \"[[ts]]\"\n}\n```",
    "Jira webhook config → URL `https://[[domain]]/hooks/jira`, secret `[[urlsafe]]`, events: issue_created",
    "ENCRYPTION_KEY=[[hex64]]\nSESSION_SECRET=[[urlsafe]]\nAPP_ENV=production",
    # --- support ticket digests -------------------------------------------------------------------
    "New ticket #[[ticket]] from [[person.es:a]] &lt;[[email:a]]&gt;: “my card [[card]] was charged twice for order #[[order]], please refund one”",
    "*Zendesk digest* (3 new)\n1. [[person:a]] — [[email:a]] — “can’t reset my password”\n2. [[person:b]] — [[phone]] — “wrong size delivered”\n3. [[given:c]] — “where is my refund?” (ticket [[ticket]])",
    "Intercom: [[given:a]] ([[email:a]]) says: i cant log in, tried resetting twice. my number is [[phone]] if you want to call",
    "Freshdesk #[[ticket]] • [[person:a]] asked to update the shipping address to [[address]] for order [[order]]",
    "ticket [[ticket]]: customer wrote “Hola, soy [[person.es]], mi tarjeta [[card.visa]] fue rechazada pero el cargo aparece” — assigning to billing",
    "Chargeback received 💳 card [[card]] exp [[expiry]] amount €[[amount_eu]] — cardholder [[person]] — reason 4837 (no cardholder authorization)",
    "Callback requested by [[person]] — [[phone]] ext. [[num.3]] — re: invoice INV-[[num.6]]",
    "cx says their ssn is [[ssn]] and dob [[dob]], can someone verify in the KYC tool? ticket [[ticket]]",
    "Support escalation from [[person:a]] (<mailto:[[email:a]]|[[email:a]]>): charged on card [[card.space]] after cancelling. Last 4 on our side shows [[last4]], so maybe a different card?",
    "Help Scout: new conversation from [[email.personal]] — “I moved, my new address is [[address.UK]], please update before the next box ships”",
    "ticket #[[ticket]] (priority: urgent)\nRequester: [[person:a]]\nEmail: [[email:a]]\nPhone: [[phone]]\nSubject: Refund not received\nCard: [[card]] (customer typed full number in the form 🙄)",
    "customer pasted their full card in chat: [[card.dash]] exp [[expiry]] cvv [[cvv]]. I deleted it from the widget but it's in the transcript",
    "Kustomer: [[person.in]] called from [[phone.in]] about a failed UPI refund, order [[order]]",
    "support macro test — sent to [[email.role]] and cc [[email]] (ignore)",
    "Gorgias: [[person.fr:a]] &lt;[[email:a]]&gt; — « bonjour, ma carte [[card]] a été débitée deux fois »",
    # --- CRM notifications -------------------------------------------------------------------------
    "Lead: [[person.ng]], [[phone.ng]], [[address.NG]]",
    "New contact created: *[[person:a]]* • [[email:a]] • [[phone]] • Company: [[company]] • Owner: [[mention]]",
    "Salesforce: Opportunity '[[company]] renewal' — primary contact [[person:a]] ([[email.work:a]]) moved to Closed Won",
    "New form submission (Contact us)\n*Name:* [[person:a]]\n*Email:* [[email:a]]\n*Phone:* [[phone]]\n*Message:* we need 40 seats, can someone call me?",
    "Calendly: New event — 30 min intro with [[person:a]] ([[email:a]]) on [[date]] 10:00 CEST",
    "HubSpot: [[person.de:a]] ([[email:a]], [[phone.de]]) downloaded the whitepaper 'Payroll in the EU'",
    "Pipedrive: deal won 🎉 [[company]] — signer [[person:a]] &lt;[[email.work:a]]&gt;, billing contact [[email.role]]",
    "webhook payload:\n```\n{\"event\":\"customer.created\",\"data\":{\"id\":\"cus_[[stripeid]]\",\"name\":\"[[person:a]]\",\"email\":\"[[email:a]]\",\"phone\":\"[[phone]]\",\"created\":[[epoch]]}}\n```",
    "exported the webinar attendees, first rows:\n```\nname,email,country,phone\n[[person.de:a]],[[email:a]],DE,[[phone.de]]\n[[person.br:b]],[[email:b]],BR,[[phone.br]]\n[[person:c]],[[email:c]],US,\n```",
    "Lead from the Lisbon event: [[person.pt:a]], [[email:a]], tel [[phone.pt]] — wants a demo next week",
    "CRM dedupe bot: merged 2 records for [[person.lower:a]] ([[email.work:a]] / [[email.personal:a]])",
    # --- HR onboarding ------------------------------------------------------------------------------
    "New hire paperwork for [[person:a]]:\n• DOB: [[dob]]\n• SSN: [[ssn]]\n• US passport: [[passport]] (exp [[date]])\n• Driver's license (CA): [[dl.CA]]\n• Home address: [[address.US]]\n• Emergency contact: [[person]] [[phone.us]]\n• Direct deposit: acct [[acct]], routing [[routing]]\nStart date: [[date]]",
    "payroll: please update direct deposit for [[person]] — routing [[routing]] acct [[acct]] (checking), effective next cycle",
    "I-9 verified for [[person]]: List A doc is US passport [[passport]] (expires [[date]]). Copy uploaded to the HRIS.",
    "Checkr report ready for [[person]] (DOB [[dob]], SSN [[ssn_masked]]) — status: clear",
    "she sent a photo of her license, CA DL [[dl.CA]], can you enter it in Workday for the parking permit",
    "Benefits enrollment for [[person]]: spouse [[person]] (DOB [[dob]]), child [[person]] (DOB [[dob]])",
    "Emergency contact updated for [[given]]: [[person]] (mother) — [[phone]] / alt [[phone]]",
    "Offer letter sent to [[person]], [[address]] — start date [[date]], base $[[amount]]",
    "hr-bot: [[person:a]] is relocating to [[city]] next month, please update payroll tax jurisdiction (employee id E[[num.6]])",
    "onboarding form (raw):\n```\nfirst_name: [[given:a]]\npreferred_name: [[given:a]]\nlegal_name: [[person:a]]\ndate_of_birth: [[dob.iso]]\nssn: \"[[ssn]]\"\nbank_routing: \"[[routing]]\"\nbank_account: \"[[acct]]\"\n```",
    "W-4 question from [[person]]: is it ok that my ssn [[ssn.plain]] is on the scan I sent to [[email.role]]?",
    "NY DL [[dl.NY]] and SSN [[ssn]] for the new driver in fleet ops ([[person]]) — please add to the insurance roster",
    "FL driver license [[dl.FL]] — [[person]] — DOB [[dob]]",
    "WA license on file: [[dl.WA]] (exp [[date]])",
    "IL DL# [[dl.IL]] — needed for the rental car booking for [[person]]",
    "dl no [[dl.PA]] (PA) for the new courier, ssn# [[ssn]]",
    "Contractor [[person]] — TX DL [[dl.TX]], DOB [[dob.us]], home: [[address.US_multi]]",
    "reference check ok for [[person]]. former manager [[titled:b]] can be reached at [[phone]] or [[email.work:b]]",
    # --- travel --------------------------------------------------------------------------------------
    "✈️ Booking confirmed — Traveller: [[person.upper]] • Passport: [[passport]] • DOB: [[dob.uk]] • Flight LH [[num.3]] FRA→JFK • PNR [[authcode]]",
    "Navan: hotel for [[person]] at Hotel Arts (check-in [[date]]), guarantee card [[card]] exp [[expiry]]",
    "visa letter request: [[person]], US passport no. [[passport]], born [[dob]], travelling to the São Paulo office for onboarding",
    "travel desk: please rebook [[titled]] on the 18:40 — passport [[passport]], frequent flyer on file, mobile [[phone]]",
    # --- finance -------------------------------------------------------------------------------------
    "Payout batch #[[num.4]] — [[person.de]] [[iban.DE_grouped]] (BIC [[bic]]) €[[amount_eu]] — status: sent",
    "Wire instructions for the contractor:\nBeneficiary: [[person]]\nIBAN: [[iban]]\nBIC/SWIFT: [[bic]]\nReference: INV-[[num.5]]",
    "⚠️ vendor asked by email to update bank details — new IBAN [[iban.GB]] (old one ended [[last4]]). Please verify by phone before paying!",
    "ACH return R03 for acct [[acct]] routing [[routing]] — employee [[person]], re-issue by check",
    "corp card [[card]] got declined at the airport, can someone raise the limit? (it's the one ending [[last4]] in Ramp, not this one)",
    "Przelew na konto [[iban.PL_grouped]], odbiorca: [[person.pl]], tytuł: faktura FV/[[num.4]]/2024",
    "Graag overmaken naar [[iban.NL]] t.n.v. [[person.nl]], kenmerk [[num.10]]",
    "Bonifico a favore di [[person.it]], IBAN [[iban.IT_grouped]], causale: rimborso spese trasferta",
    "Maaş ödemesi: [[person.tr]] — IBAN: [[iban.TR_grouped]] — tutar ₺[[amount_eu]]",
    "Virement pour [[person.fr]] — IBAN [[iban.FR_grouped]] — BIC [[bic]] — motif : note de frais",
    "Transferencia: titular [[person.es]], IBAN [[iban.ES]], concepto “nómina marzo”",
    "Pagamento: [[person.pt]] — IBAN [[iban.PT_grouped]] — valor €[[amount_eu]]",
    "Überweisung an [[person.de]], IBAN [[iban.DE]], Verwendungszweck: Gehalt",
    "finance-bot: refund to [[iban.CH_grouped]] and [[iban.AT_grouped]] failed (beneficiary name mismatch)",
    "Stripe payout to the Irish entity: IBAN [[iban.IE]], account holder [[company]]",
    "vendor master change: [[company]] new account [[iban.BE]] / old [[iban.LU]] — approved by [[mention]]",
    "check deposit: account [[acct]] at routing [[routing]], amount $[[amount]], memo 'Q2 bonus'",
    "Ramp: reimbursement to [[person]] — ACH routing [[routing]] account [[acct]]",
    "USD wire: ABA [[routing]], account [[acct]], beneficiary [[person]], SWIFT [[bic]]",
    # --- healthcare-like intake ----------------------------------------------------------------------
    "Patient: [[person]] | DOB: [[dob]] | MRN [[mrn]] | Phone: [[phone]] | Address: [[address]]",
    "Paciente: [[person.es]], fecha de nacimiento [[dob.es]], tel. [[phone.es]], domicilio [[address.ES]]",
    "intake form:\nName: [[person:a]]\nDate of birth: [[dob]]\nInsurance member ID: [[authcode]][[num.6]]\nPhone: [[phone.us]]\nEmail: [[email:a]]",
    "Paziente [[person.it]], data di nascita [[dob.it]], tel. [[phone.it]] — richiesta referto",
    # --- people moving --------------------------------------------------------------------------------
    "fyi [[person]] is moving to [[city]] in september but staying on the team",
    "[[given]] just told me they're relocating to [[city]] after her parental leave",
    "A [[person.pt]] vai se mudar para [[city.pt]] no mês que vem, já atualizei o cadastro",
    "[[person.de]] zieht im Mai nach [[city.de]] um, bitte Adresse im Personalsystem ändern",
    "[[person.fr]] déménage à [[city.fr]] en juin, il faudra changer sa mutuelle",
    "[[person.es]] se muda a [[city.es]] el mes que viene",
    "[[person.pl]] przeprowadza się do miasta [[city.pl]] od lipca",
    "[[person.it]] si trasferisce a [[city.it]] a fine mese",
    "[[person.nl]] verhuist volgende maand naar [[city.nl]]",
    "[[person.tr]] ay sonunda [[city.tr]] şehrine taşınıyor",
    "[[person.vi]] sẽ chuyển đến [[city.vi]] vào tháng sau",
    "new address for [[person]] after the move: [[address.multi]]",
    # --- credentials typed in chat --------------------------------------------------------------------
    "your temp pw is [[password]] — change it on first login pls",
    "login: admin / [[password]]",
    "the wifi password is [[wifi_pw]]",
    "reset your vpn pw to [[password]] for now, I'll force a change tomorrow",
    "creds for staging grafana: `admin` / `[[password]]`",
    "here's the root pw for the NAS: [[password]] pls don't share",
    "Password reset bot: Your password has been reset. Temporary password: [[password]] (expires in 24h)",
    "ok i'm just pasting it here: user `svc-report` pass `[[password]]`",
    "push to `https://deploy:[[password.url]]@registry.internal.[[domain]]/v2/` works from the runner",
    "mysql -h [[ipv4.priv]] -u root -p'[[password]]' orders  ← run this from bastion",
    "the shared mailbox [[email.role]] pw is “[[password]]”",
    "guest wifi: SSID `[[company]]-Guest` / pass: [[wifi_pw]] 📶",
    "new jira service account → username: jira-bot, password: [[password]], api token: [[atlassian]]",
    "can you try logging in with [[email.work]] and [[password]]? if that fails it's SSO",
    "pasword for the old ftp is [[password]] (host [[ipv4.pub]], port 21)",
    "{\"username\": \"svc_ledger\", \"password\": \"[[password]]\", \"host\": \"[[ipv4.priv]]\"}",
    "la contraseña del wifi es [[wifi_pw]]",
    "Dein Initialpasswort lautet: [[password]]",
    "le mot de passe temporaire est « [[password]] »",
    "hasło do konta testowego: [[password]]",
    "mật khẩu mới của bạn là [[password]]",
    "sunucu şifresi: [[password]]",
    "la password del router è [[wifi_pw]]",
    "wachtwoord voor de gedeelde mailbox: [[password]]",
    "senha provisória: [[password]] (troque no primeiro acesso)",
    # --- multilingual PII ------------------------------------------------------------------------------
    "Cliente: [[person.br:a]], e-mail [[email:a]], celular [[phone.br]], endereço [[address.BR]]",
    "Personalstammblatt: [[person.de:a]], geb. [[dob.de]], Anschrift: [[address.DE]], Tel. [[phone.de]]",
    "Nouveau client : [[person.fr:a]], né(e) le [[dob.fr]], [[address.FR]], [[email:a]]",
    "[[person.pl:a]] (tel. [[phone.pl]]) prosi o kontakt — adres do korespondencji: [[address.PL]]",
    "Khách hàng [[person.vi]], SĐT [[phone.vn]], địa chỉ [[address.VN]]",
    "Müşteri: [[person.tr:a]], telefon: [[phone.tr]], e-posta: [[email:a]], adres: [[address.TR]]",
    "Nuova assunzione: [[person.it]], data di nascita [[dob.it]], residente in [[address.IT]]",
    "Klant [[person.nl:a]] ([[email:a]]) belde over de creditcard [[card]] — dubbele afschrijving",
    "Nueva alta: [[person.es:a]] — pasaporte estadounidense [[passport]], fecha de nacimiento [[dob.es]]",
    "Zgłoszenie od [[person.pl:a]] &lt;[[email:a]]&gt;: karta [[card]] obciążona dwa razy",
    "Yêu cầu hoàn tiền: [[person.vi:a]] ([[email:a]]), thẻ [[card.space]]",
    "تذكرة جديدة من [[person.arab:a]] — البريد: [[email:a]] — الهاتف: [[phone.ae]]",
    "New ticket from [[person.arab:a]] ([[email:a]]): “I was charged twice, card [[card]]”",
    "予約確認: [[person.jpk:a]] 様 ([[email:a]]) — 電話 [[phone.jp]]",
    "客户 [[person.cnh:a]] 的邮箱是 [[email:a]]，电话 [[phone.cn]]",
    "신규 고객: [[person.krh:a]] / [[email:a]] / [[phone.kr]]",
    "Booking for [[person.cn]] and [[person.jp]] — both US passports: [[passport]], [[passport]]",
    # --- unicode oddities / formatting -------------------------------------------------------------
    "SSN:\u00a0[[ssn]] — DOB:\u00a0[[dob]] (from the scanned W-2, [[person]])",
    "temp password → “[[password]]” 🔑 (case-sensitive!)",
    "‘[[person:a]]’ &lt;[[email:a]]&gt; asked for a callback on [[phone]] 📞",
    "phone:\u00a0[[phone.uk]]\u00a0/ email:\u00a0[[email]]",
    "👋 reach out to <mailto:[[email:a]]|[[email:a]]> for the refund, she handles EU payouts",
    "invite link that got posted publicly: https://app.[[domain]]/invite?email=[[email.urlenc]]&amp;role=admin&amp;token=[[urlsafe]]",
    "Stack trace:\n```\nValidationError: email '[[email]]' already exists\n  at UserService.create (user.service.ts:88)\n  at /app/node_modules/express/lib/router/layer.js:95\n```",
    "access log: `[[ipv4.pub]] - - [[[ts]]] \"POST /login HTTP/1.1\" 401 53 \"-\" \"curl/8.4.0\"` ×400 in 2 min",
    "[[ipv6]] - - \"GET /api/v1/users?email=[[email.urlenc]] HTTP/2\" 200",
    "ssn 9 digits no dashes in the CSV: [[ssn.plain]], [[ssn.plain]] — fix the export please",
    "SSN [[ssn.space]] (spaced as the customer typed it)",
    "Applicant [[person.lf]] — SSN [[ssn]] — DOB [[dob.us]]",
    "traveller DOB [[dob.us]], passport [[passport]], name as on passport: [[person.upper]]",
    "CC on file for [[titled]]: [[card.amex]] exp [[expiry]]",
    "test card for the sandbox is [[card.test]] (any cvv, any future expiry)",
    "customer's cards:\n• [[card.visa_space]]\n• [[card.mc_dash]]\n• [[card.amex_plain]]",
    "discover [[card.disc]] / jcb [[card.jcb]] / diners [[card.diners]] — all failing 3DS",
    # --- extra coverage for the rarer labels -------------------------------------------------------
    "HR ticket: [[person:a]] (employee [[num.6]]) says the SSN on their W-2 is wrong — should be [[ssn]], not [[ssn]]",
    "Workday import row that failed validation:\n`[[person]],[[dob.iso]],[[ssn]],\"[[address.US]]\"`",
    "passport copy for the Tokyo trip: [[person:a]] – passport no. [[passport]] – nationality USA – DOB [[dob.us]]",
    "US passport [[passport]] expires [[date]], please renew before the offsite (it's [[given]]'s)",
    "DMV check done: CA [[dl.CA]], NY [[dl.NY]], FL [[dl.FL]] — all valid, no points",
    "licencia de conducir de Florida: [[dl.FL]] — conductor [[person.es]]",
    "kyc-checker log: name=\"[[person]]\" dob=[[dob.iso]] ssn=[[ssn.plain]] ip=[[ipv4.pub]] result=REVIEW",
    "age verification failed for [[person]] — dob entered as [[dob]] (does not match the ID scan)",
    "Doğum tarihi: [[dob.tr]], ad soyad: [[person.tr]], T.C. vatandaşı değil — ABD pasaportu [[passport]]",
    "dane pracownika: [[person.pl]], data urodzenia [[dob.pl]], konto [[iban.PL]]",
    "geboortedatum van [[person.nl]] is [[dob.nl]], graag aanpassen in AFAS",
    "hồ sơ nhân viên: [[person.vi]], ngày sinh [[dob.vi]], SĐT [[phone.vn]]",
    "社員登録: [[person.jpk]]、生年月日 [[dob.jp]]、携帯 [[phone.jp]]",
    "BGP: new peer [[ipv6]] established, old peer [[ipv6]] removed (router [[host]])",
    "firewall rule added: allow tcp/5432 from [[ipv4.priv]] and [[ipv4.priv]] only — 0.0.0.0/0 removed",
    "Direct deposit split for [[person]]: 80% to acct [[acct]] (routing [[routing]]), 20% to savings [[acct]] (routing [[routing]])",
    "From: [[person:a]] <[[email:a]]>\nTo: [[email.role]]\nSubject: change of address\n\nplease send my payslips to [[address.multi]]",
    "kubectl create secret generic ledger-api --from-literal=API_KEY=[[hex32]] --from-literal=DB_PASS=[[password]]",
    "the datadog api key is [[dd_api]] (the app key stays in vault)",
    "git remote is `https://x-access-token:[[ghs]]@github.com/[[org]]/[[repo]].git` — token is baked into the runner image 😱",
    "`curl -H \"Authorization: token [[gho]]\" https://api.github.com/user` returns 200 for me",
    "SENTRY_AUTH_TOKEN=[[sentry_auth]] (used by the sourcemap upload step)",
    "DOPPLER_TOKEN=[[doppler]] ./run.sh — don't commit this line",
    "discord alert bot token: [[discord]]",
    "[[titled]] approved the expense; receipts for card [[card]] are in the drive",
    "meeting with [[titled.de]] from [[company]] moved to [[date]], dial-in [[phone.de]]",
    "ping [[person.lower]] about the refund, they own the [[company]] account",
    "EMERGENCY CONTACT: [[person.upper]] — [[phone]] (spouse)",
    "ip of the compromised laptop was [[ipv4.priv]] (dhcp) and it talked to [[ipv4.pub]]:[[port]] + [[ipv6]]",
    "Stripe restricted key for the support dashboard: [[rk_live]] (read-only charges)",
]


# ----------------------------------------------------------------------------------------------
# CLEAN templates (no span): hard negatives from the "does not count" column
# ----------------------------------------------------------------------------------------------
CLEAN = [
    # --- monitoring / alerting bots ---------------------------------------------------------------
    ":white_check_mark: *[Resolved]* #[[num.5]] High memory on `[[host]]` — duration [[dur]]. Service: [[svc]] • Region: [[region]]",
    "Datadog: [P3] `system.load.1` above 8 on [[host]] — app listens on 0.0.0.0:[[port]], local health check to 127.0.0.1:[[port]] ok",
    "Health check: upstream `[[svc]]` → http://localhost:[[port]]/healthz returned 503 (trace_id=[[traceid]], span_id=[[spanid]])",
    "kube-bot: Deployment `[[svc:a]]` rolled out image `[[svc:a]]:[[semver]]` ([[imgdigest]]) to [[region]] — 12/12 pods ready",
    "Terraform Cloud: [[runid]] applied in workspace `prod-network` — AWS account [[awsacct]], subnet mask 255.255.240.0 unchanged",
    "status bot: listeners bound to [::]:[[port]] and [::1]:[[port]] on all [[region]] nodes ✅",
    "PagerDuty: Incident #[[num.5]] acknowledged by [[mention]] — escalation policy `Platform Primary` — [[ts]]",
    "Uptime: ✅ api.[[domain]] is back UP after [[dur]] (HTTP 200). Checked from [[region]] and [[region]].",
    "Sentry: [[num.3]] new events for `TimeoutError: upstream took 30000ms` — release [[version4]] — first seen [[ts]]",
    "[FIRING:1] HighErrorRate service=[[svc]] pod=[[k8spod]] dc=[[dc]] value=[[pct]]% runbook=<https://runbooks.acme.io/5xx|5xx>",
    "nginx is bound to 127.0.0.1:[[port]] so it's not exposed; eth1 mask is [[netmask]], gateway config untouched",
    "CloudWatch: `CPUUtilization` &gt;= 85 for 3 datapoints on i-0[[hexshort]][[hexshort]]a in [[region]] (account [[awsacct]])",
    "Grafana: dashboard 'Payments latency' p99 = 840ms ([[dc]]), p99 = 390ms ([[dc]]). Annotation by [[mention]]",
    "blackbox exporter: probe_success=0 for target localhost:[[port]] since [[ts]]",
    "Datadog monitor *[[svc]] queue depth* muted until [[date]] by [[mention]] (maintenance [[jira]])",
    "synthetic check `login-flow` failed step 3 in [[region]] — screenshot attached, request id [[uuid]]",
    "fluent-bit on [[host]]: dropped 1,024 records, buffer at 0.0.0.0:24224 full (retry [[num.2]])",
    "alert: `ntp offset &gt; 500ms` on [[host]], chrony source 127.127.1.0 (local clock) — ignore, known",
    "vpc flow logs are on for the new subnets; default route 0.0.0.0/0 goes to the NAT gw, ::/0 to the egress-only gw",
    "agent upgraded to 7.52.0.1 across the fleet, 6.9.2.3 is EOL — MAC [[mac]] on the old box still reporting",
    # --- CI / dev bots --------------------------------------------------------------------------------
    "GitHub: [[given]] pushed 3 commits to `main` ([[shortsha]]…[[shortsha]]) — build #[[build]] passed in [[dur]]",
    "Jenkins: Job `nightly-e2e` #[[build]] UNSTABLE — 4 flaky tests. Agent: [[dc]]-agent-07",
    "Dependabot: bump `requests` from 2.31.0 to 2.32.3 in /services/billing (#[[pr]])",
    "CircleCI: workflow `deploy-prod` succeeded — commit [[sha]] by [[mention]]",
    "GitHub Actions: `deploy.yml` finished — env: AWS_REGION=[[region]] STRIPE_KEY=*** SLACK_TOKEN=*** DB_PASSWORD=${DB_PASSWORD}",
    ".env.example (safe to commit):\n```\nSTRIPE_SECRET_KEY=sk_live_YOUR_KEY_HERE\nSLACK_BOT_TOKEN=xoxb-your-token\nDATABASE_URL=postgres://&lt;user&gt;:&lt;password&gt;@localhost:5432/app\nOPENAI_API_KEY=YOUR_API_KEY\n```",
    "workflow yaml:\n```\nenv:\n  NPM_TOKEN: ${{ secrets.NPM_TOKEN }}\n  AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n  SLACK_WEBHOOK_URL: ${{ secrets.SLACK_WEBHOOK }}\n```",
    "the AWS docs example is still in our README: AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY — please remove it, it confuses the scanner",
    "GitLab: pipeline #[[build]] for `[[repo]]` passed on [[shortsha]] — CI_JOB_TOKEN: [MASKED]",
    "npm publish @acme/ui@[[semver]] ok — integrity sha512-[[b64.64]]",
    "git clone git@github.com:[[org]]/[[repo]].git &amp;&amp; ssh ubuntu@[[shorthost]] to check the runner",
    "ssh deploy@bastion-2 -p [[port]] then `sudo journalctl -u [[svc]]`",
    "docker run -p 0.0.0.0:8080:8080 -e API_KEY=$API_KEY [[svc]]:latest",
    "k8s secret template (values redacted):\n```\ndata:\n  password: &lt;redacted&gt;\n  api-key: ********\n```",
    "build log: `export GITHUB_TOKEN=***` `export NPM_TOKEN=&lt;redacted&gt;` — masking works now 👍",
    "api call for the docs: `curl -H 'Authorization: Bearer $TOKEN' https://api.[[domain]]/v1/users/[[uuid]]`",
    "helm: `--set db.password={{ .Values.db.password }}` is resolved from the sealed secret, not typed anywhere",
    "merge request ![[pr]] changed `config/settings.py`: `SECRET_KEY = os.environ[\"SECRET_KEY\"]`",
    "Renovate: lockfile maintenance for [[repo]] — 14 packages updated, tree hash [[sha]]",
    "release tarball checksums:\n```\nsha256  [[sha256]]  app-[[semver:a]].tar.gz\nmd5     [[md5]]  app-[[semver:a]].tar.gz\n```",
    "deploy key added (public part only): `[[sshpub]] deploy@ci`",
    "here's the CA cert for the internal registry, it's public:\n```\n[[cert]]\n```",
    "JWKS rotated — new public key for token verification:\n```\n[[pubkey]]\n```",
    "bcrypt hash stored for the test user is `[[bcrypt]]` — cost 12 is fine",
    "the JWT header alone is eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9 — it just says RS256, no payload or signature",
    "Vault: lease `database/creds/readonly/[[uuid]]` revoked after TTL; role `readonly`, path policy updated",
    "mobile app build [[version4]] (code [[num.6]]) submitted for review; GTM container [[gtm]], GA stream [[ga]]",
    "image pinned to `[[svc]]@[[imgdigest]]` for the release branch",
    "commit [[sha]] reverted [[shortsha]]; bisect points at PR #[[pr]]",
    # --- stripe / twilio / payments ids -------------------------------------------------------------
    "Stripe: payment pi_[[stripeid]] succeeded for cus_[[stripeid]] — card ending [[last4]] (exp [[expiry]]) — $[[amount]]",
    "frontend uses the publishable key `[[pk_live]]`, that one is fine to ship in the bundle",
    "Twilio: SMS delivered — Account SID [[acsid]], message [[twilio_sm]]",
    "Stripe webhook [[stripe_evt]] (`charge.refunded`) replayed OK, idempotency key [[uuid]]",
    "Payment failed: card ending in [[last4]], expired [[expiry]]. Customer notified via email template `card_expired`.",
    "refund for ticket #[[ticket]] went out; last4 [[last4]], auth code [[authcode]]",
    "expense report #[[num.6]] approved: $[[amount]] on card ending [[last4]]",
    "Shopify: order #[[order]] paid (Visa •••• [[last4]]), fulfilment from the [[office]] warehouse",
    "batch id [[luhnbad]] was rejected by the card validator (fails Luhn — it's our internal id, not a PAN)",
    "customer asked why the statement shows ref [[luhnbad]]; that's the acquirer reference, nothing sensitive",
    "customer says they were charged twice; I asked for the last 4 only — it's [[last4]], exp [[expiry]]",
    "Ramp: card ending [[last4]] frozen by [[mention]] after the limit change, unfreeze requested in [[jira]]",
    # --- finance (BIC, masked values, account ids) ------------------------------------------------
    "finance: EUR wires go via BIC [[bic]]; the SWIFT code for the USD account is [[bic]]",
    "AWS billing alert: account [[awsacct]] forecast $[[amount]] (over budget) — [[region]]",
    "payroll run [[num.6]] completed for 214 employees, total €[[amount_eu]], bank file uploaded",
    "Invoice INV-[[num.5]] due [[date]] — PO [[num.8]] — vendor: [[company]]",
    "payout to [[iban_masked]] confirmed (masked in the export, full IBAN only in the bank portal)",
    "bank details are in the vault; BIC [[bic]] is fine to share with the auditors",
    "AWS Organizations: moved account [[awsacct]] and [[awsacct]] to the `sandbox` OU",
    "billing: GCP project acme-prod-[[num.6]] in us-central1 ran over by €[[amount_eu]]",
    "reconciliation: 3 payouts stuck, refs PO-[[num.6]], PO-[[num.6]], PO-[[num.6]] — bank says tomorrow",
    # --- support / CRM digests with no PII ------------------------------------------------------------
    "support digest: 14 new tickets, 9 solved, median first response 2h 11m. Top tags: refund, login, shipping",
    "CRM: deal *[[company]] – renewal* moved to Negotiation by [[mention]] (value €[[amount_eu]])",
    "HubSpot: 38 contacts imported from list 'Webinar [[date.iso]]' — 3 duplicates skipped",
    "Zendesk: ticket #[[ticket]] updated — status pending, priority high, assignee [[mention]]",
    "Calendly: new event 'Intro call' booked for [[date]] 10:00 CEST via the website widget",
    "Intercom: 4 conversations snoozed until [[date]]; SLA breach warnings for #[[ticket]] and #[[ticket]]",
    "Freshdesk automation: tickets from domain blocklist routed to spam (rule id [[num.4]])",
    "password reset requested for [[mention]] — link sent, expires in 30 minutes (ticket #[[ticket]])",
    "Okta: MFA reset completed for [[mention]] ([[jira]])",
    "the password policy changed: min 14 chars, rotate every 90 days, no reuse of the last 5",
    "wifi for guests: network `[[company]]-Guest`, the password is on the whiteboard in the kitchen",
    "Salesforce: 12 opportunities closed this week, pipeline $[[amount]]; top region: EMEA",
    "zoom for the QBR: meeting ID [[zoomid]], passcode in the calendar invite",
    "google meet: meet.google.com/[[meetcode]] — starting in 5",
    "support bot: order [[order]] shipped, tracking 1Z[[ups]]",
    "customer #[[num.7]] wants to change their DOB on file; sent them the secure form link (no values in Slack please!)",
    "reminder: never paste full card numbers, SSNs or passwords here — use the secure form ([[jira]])",
    "the intake form placeholder shows 'MM/DD/YYYY' for date of birth and 'XXX-XX-XXXX' for SSN",
    "HR-bot: background check for candidate [[num.6]] is clear (SSN [[ssn_masked]], verified)",
    "ITIN on the W-7 application looks like [[ninexx]] — that's a 9xx number, not an SSN, route to the tax team",
    "form field `ssn_last4` = [[last4]] and `dob_year` = 19[[num.2]] is all we store",
    # --- people / teams / offices (names that aren't PERSON, cities that aren't LOCATION) -------------
    "thanks [[given]]! the fix for the [[product]] outage is deployed",
    "[[given]] can you review PR #[[pr]] when you get a chance?",
    "Cassandra compaction is lagging again on the [[dc]] cluster, Jenkins retried twice",
    "reminder: the [[office]] office is closed Friday; team offsite moved to [[date]]",
    "new hire starts [[date]] — laptop ordered (order #[[order]]), badge request [[jira]]",
    "🎉 welcome [[given]] to the team! joining the [[office]] office from next week",
    "the Ada compiler folks and the Jenkins team will sync on [[date]] in the [[office]] office",
    "@channel the Lisbon venue for the offsite is booked, flights must be in by [[date]]",
    "HR: benefits enrollment closes [[date]]; start dates for the Q3 cohort are [[date]] and [[date]]",
    "Standup summary\n• [[given]]: finished SSO migration\n• [[given]]: on call, 2 pages\n• [[given]]: OOO until [[date]]",
    "Trello: card 'Onboarding checklist for new starter' moved to Doing by [[mention]]",
    "ping [[mention]] and [[mention]] — can one of you cover [[given]]'s shift on [[date]]?",
    "Delphi and Athena are both down for maintenance until [[ts]]",
    "[[company]] signed! kickoff at their [[office]] HQ on [[date]]",
    "Hermes (our notification service) is sending duplicate emails again, see [[jira]]",
    "cc [[given]] and [[given]] — our new cage in [[dc]] is racks 14-16, keys at the front desk",
    "contract renewal deadline for [[company]] is [[date]], legal has the redlines",
    "Jasper and Minerva dashboards moved to the new Grafana folder",
    "data residency: EU customers stay in eu-central-1 (Frankfurt), US in us-east-1 (N. Virginia)",
    "reminder to submit timesheets by [[date]] 17:00",
    "Gusto: bank account ending [[last4]] verified for [[given]], first payroll on [[date]]",
    "Plaid webhook `DEFAULT_UPDATE` for item [[b64.18]] — 3 new transactions, request_id [[authcode]][[hexshort]]",
    "Ramp export: 41 transactions, cards ending [[last4]], [[last4]] and [[last4]] — receipts missing for 6",
    "travel policy: passport numbers go in Navan profile only, never in Slack; visa deadlines are [[date]] and [[date]]",
    "the DOB field now rejects dates after [[date.iso]] and before 1900-01-01 ([[jira]])",
    # --- multilingual clean ---------------------------------------------------------------------------
    "gracias [[given.es]]! el despliegue en [[region]] terminó sin errores (build #[[build]])",
    "Recordatorio: la oficina de Madrid cierra el [[date.es]]. Pedido nº [[order]] en camino.",
    "Ticket #[[ticket]] actualizado: estado 'pendiente', prioridad alta, asignado a [[mention]]",
    "valeu [[given.pt]]! o ticket #[[ticket]] foi resolvido, cartão final [[last4]] estornado",
    "lembrete: o escritório de São Paulo fecha dia [[date.pt]], pedido [[order]] sai na segunda",
    "Danke [[given.de]], das Deployment in eu-central-1 ist durch. Build [[build]], Commit [[shortsha]].",
    "Die Besprechung im Münchner Büro ist auf den [[date.de]] verschoben, Raum 3.12",
    "merci [[given.fr]] ! le ticket n° [[ticket]] est clos, la carte se terminant par [[last4]] a été remboursée",
    "rappel : le bureau de Paris sera fermé le [[date.fr]] (pont)",
    "dzięki [[given.pl]]! wdrożenie na produkcję zakończone, wersja [[semver]], zamówienie nr [[order]]",
    "przypomnienie: termin składania wniosków urlopowych to [[date.pl]]",
    "cảm ơn [[given.vi]] nhé! bản build #[[build]] đã chạy xong trên [[region]]",
    "nhắc nhở: hạn nộp báo cáo là [[date.vi]], mã đơn hàng [[order]]",
    "teşekkürler [[given.tr]]! sipariş no [[order]] kargoya verildi",
    "hatırlatma: İstanbul ofisi [[date.tr]] tarihinde kapalı olacak",
    "grazie [[given.it]]! il deploy su [[region]] è andato, ticket #[[ticket]] chiuso",
    "promemoria: l'ufficio di Milano chiude il [[date.it]], fattura n. [[num.5]]",
    "bedankt [[given.nl]]! de storing in het Amsterdamse kantoor is opgelost, incident #[[num.5]]",
    "herinnering: declaraties vóór [[date.nl]] indienen, ordernummer [[order]]",
    "شكراً [[given.arab]]! تم إغلاق التذكرة رقم [[ticket]]",
    "ありがとう [[given.jpk]]さん！ビルド #[[build]] は成功しました",
    "收到，谢谢！订单号 [[order]] 已发货，预计 [[date.iso]] 送达",
    "고마워요 [[given.krh]]! 배포 완료, 버전 [[semver]]",
    "hasło musi mieć min. 12 znaków — nie wysyłajcie haseł na Slacku 🙏",
    "o código de verificação expira em 10 minutos, não compartilhe com ninguém",
    "das WLAN-Passwort hängt im Büro an der Pinnwand, bitte nicht hier posten",
    "le mot de passe du wifi invité est affiché à l'accueil, pas besoin de le partager ici",
    # --- unicode-heavy clean ----------------------------------------------------------------------
    "✅ Build #[[build]] • 🕐 [[dur]] • 🌍 [[region]] • 🔖 v[[semver]] • 👤 [[mention]]",
    "“ship it” says [[given]] 🚀 — release notes in [[jira]]",
    "Ticket\u00a0#[[ticket]]\u00a0→\u00a0closed (dup of #[[ticket]])",
    "uptime 99.98% this month · 2 incidents · MTTR [[dur]] · error budget left [[pct]]%",
    "slack ids for the on-call bot config: [[slackid]], [[slackid]], channel [[chanlink]]",
]


# ----------------------------------------------------------------------------------------------
# build
# ----------------------------------------------------------------------------------------------
def draw(templates, n, want_spans):
    order = list(range(len(templates)))
    R.shuffle(order)
    if n > len(order):
        order += [R.randrange(len(templates)) for _ in range(n - len(order))]
    order = order[:n]
    rows, seen = [], set()
    for ti in order:
        for _ in range(20):
            text, spans = render(templates[ti])
            if text not in seen:
                break
        seen.add(text)
        if want_spans:
            assert spans, f"positive template produced no span: {templates[ti][:70]!r}"
        else:
            assert not spans, f"clean template produced spans: {templates[ti][:70]!r}"
        rows.append({"text": text, "spans": spans, "_tpl": ti, "_kind": "pos" if want_spans else "clean"})
    return rows


def main():
    assert len(set(POS)) == len(POS) and len(set(CLEAN)) == len(CLEAN)
    pos = draw(POS, N_TOTAL - N_CLEAN, True)
    clean = draw(CLEAN, N_CLEAN, False)
    rows = pos + clean
    R.shuffle(rows)
    with open(OUT, "w", encoding="utf-8") as fh:
        for i, r in enumerate(rows, 1):
            fh.write(json.dumps({"id": f"p3-{i:05d}", "text": r["text"], "spans": r["spans"]}, ensure_ascii=False) + "\n")
    print(f"templates: {len(POS)} positive + {len(CLEAN)} clean = {len(POS) + len(CLEAN)}", file=sys.stderr)
    print(f"wrote {len(rows)} rows to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
