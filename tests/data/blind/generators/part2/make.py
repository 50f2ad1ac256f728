#!/usr/bin/env python3
"""Generator for the blind part-2 evaluation set: structured pastes into Slack.

Everything is hand-written here (names, templates, value generators).  All randomness
comes from one seeded random.Random(2202), so the output is reproducible:

    python3 make.py            -> writes messages.jsonl (500 lines)

A template returns a list of segments (text, label).  label None = literal text
(gets Slack-escaped), 'RAW' = Slack markup that is never escaped (<mailto:..|..>,
<@U..>, <https://..|..>), anything else = a labelled span.  Offsets are computed
while the segments are concatenated, so they are exact by construction.
"""
import base64
import datetime as dt
import json
import re
import string
import sys
import unicodedata
import urllib.parse

import random

SEED = 2202
R = random.Random(SEED)

E, PH, CC, SSN, IB, IP = ('EMAIL_ADDRESS', 'PHONE_NUMBER', 'CREDIT_CARD', 'US_SSN',
                          'IBAN_CODE', 'IP_ADDRESS')
PE, LO, BA, PP, DL, DOB, SE = ('PERSON', 'LOCATION', 'US_BANK_NUMBER', 'US_PASSPORT',
                               'US_DRIVER_LICENSE', 'DATE_OF_BIRTH', 'SECRET')

ALNUM = string.ascii_letters + string.digits
LOWNUM = string.ascii_lowercase + string.digits
UPNUM = string.ascii_uppercase + string.digits
HEX = '0123456789abcdef'
B64 = ALNUM + '+/'
B64URL = ALNUM + '-_'


def ch(seq):
    return R.choice(seq)


def rs(n, alphabet=ALNUM):
    return ''.join(R.choice(alphabet) for _ in range(n))


def ri(a, b):
    return R.randint(a, b)


def coin(p=0.5):
    return R.random() < p


def rbytes(n):
    return bytes(R.getrandbits(8) for _ in range(n))


def b64(b):
    return base64.b64encode(b).decode()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()


# ----------------------------------------------------------------------------------
# segment machinery
# ----------------------------------------------------------------------------------
PH_RE = re.compile('⟨([a-zA-Z0-9_]+)⟩')


def P(template, **kw):
    """Fill ⟨key⟩ placeholders.  kw values: str (literal), (value, label) (span),
    or a list of segments (spliced in)."""
    out = []
    pos = 0
    for m in PH_RE.finditer(template):
        if m.start() > pos:
            out.append((template[pos:m.start()], None))
        v = kw[m.group(1)]
        if isinstance(v, str):
            out.append((v, None))
        elif isinstance(v, tuple):
            out.append(v)
        elif isinstance(v, list):
            out.extend(v)
        else:
            raise TypeError((m.group(1), v))
        pos = m.end()
    if pos < len(template):
        out.append((template[pos:], None))
    return out


def RAW(s):
    return [(s, 'RAW')]


def T(s):
    return [(s, None)]


def join(parts, sep='\n'):
    out = []
    for i, p in enumerate(parts):
        if i:
            out.append((sep, None))
        if isinstance(p, str):
            out.append((p, None))
        elif isinstance(p, tuple):
            out.append(p)
        else:
            out.extend(p)
    return out


def esc(s):
    return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')


def render(segs, escape):
    text = ''
    spans = []
    for s, lab in segs:
        if lab != 'RAW' and escape:
            s = esc(s)
        if lab and lab != 'RAW':
            spans.append({'start': len(text), 'end': len(text) + len(s), 'label': lab})
        text += s
    # merge nothing; spans are disjoint by construction
    return text, spans


def fence(segs, lang=''):
    return T('```' + lang + '\n') + segs + T('\n```')


def csvline(fields, sep=','):
    """fields: str literal or (value,label). Quote values containing sep."""
    out = []
    for i, f in enumerate(fields):
        if i:
            out.append((sep, None))
        if isinstance(f, tuple):
            v, lab = f
            if sep in v or '\n' in v:
                out += [('"', None), (v, lab), ('"', None)]
            else:
                out.append((v, lab))
        else:
            if sep in f:
                out.append(('"' + f + '"', None))
            else:
                out.append((f, None))
    return out


# ----------------------------------------------------------------------------------
# names (hand-written, by origin).  order 'GF' given-first, 'FG' family-first
# ----------------------------------------------------------------------------------
ORIGINS = {
    'yoruba': ('GF', ['Adebayo', 'Oluwaseun', 'Folake', 'Temitope', 'Ayodele', 'Olumide', 'Funmilayo',
                      'Babatunde', 'Yetunde', 'Oluwadamilare', 'Titilayo', 'Adewale', 'Bukola', 'Kehinde'],
               ['Adeyemi', 'Ogunleye', 'Balogun', 'Adebanjo', 'Oyelaran', 'Akinola', 'Olatunji', 'Ogundipe',
                'Fashola', 'Adesanya', 'Oyelowo', 'Adeleke']),
    'igbo': ('GF', ['Chinedu', 'Ngozi', 'Chidi', 'Obinna', 'Adaeze', 'Chiamaka', 'Emeka', 'Ifeoma', 'Nnamdi',
                    'Uchenna', 'Chukwuemeka', 'Amarachi', 'Ikenna'],
             ['Okafor', 'Okonkwo', 'Nwosu', 'Eze', 'Obi', 'Nwachukwu', 'Okeke', 'Onyekachi', 'Chukwu', 'Ibekwe',
              'Anyanwu', 'Uzoma']),
    'hausa': ('GF', ['Aisha', 'Musa', 'Zainab', 'Abubakar', 'Hauwa', 'Sani'],
              ['Bello', 'Danjuma', 'Abdullahi', 'Usman', 'Garba', 'Lawal']),
    'vietnamese': ('FG', ['An', 'Hoa', 'Lan', 'Tuấn', 'Hùng', 'Linh', 'Mai', 'Phương', 'Quang', 'Thảo', 'Dũng',
                          'Huy', 'Trang'],
                   ['Nguyễn', 'Trần', 'Lê', 'Phạm', 'Hoàng', 'Huỳnh', 'Võ', 'Đặng', 'Bùi', 'Đỗ']),
    'chinese': ('FG', ['Wei', 'Fang', 'Xiuying', 'Jing', 'Lei', 'Yan', 'Jie', 'Tao', 'Min', 'Hui', 'Xiaoming',
                       'Yuting', 'Zihan', 'Haoran', 'Jiayi'],
                ['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao', 'Wu', 'Zhou', 'Xu', 'Sun',
                 'Lin', 'Guo']),
    'korean': ('FG', ['Min-jun', 'Seo-yeon', 'Ji-ho', 'Ha-eun', 'Do-yun', 'Ji-woo', 'Seo-jun', 'Su-bin',
                      'Hye-jin', 'Jae-won', 'Yuna'],
               ['Kim', 'Lee', 'Park', 'Choi', 'Jung', 'Kang', 'Cho', 'Yoon', 'Jang', 'Lim', 'Han', 'Shin']),
    'japanese': ('GF', ['Haruto', 'Yui', 'Sota', 'Aoi', 'Ren', 'Hina', 'Kenji', 'Yoko', 'Takumi', 'Misaki'],
                 ['Tanaka', 'Suzuki', 'Takahashi', 'Watanabe', 'Ito', 'Yamamoto', 'Nakamura', 'Kobayashi',
                  'Sato']),
    'polish': ('GF', ['Łukasz', 'Małgorzata', 'Katarzyna', 'Wojciech', 'Agnieszka', 'Paweł', 'Grzegorz',
                      'Zofia', 'Michał', 'Joanna', 'Krzysztof', 'Bożena'],
               ['Wiśniewski', 'Kowalczyk', 'Wójcik', 'Kamiński', 'Lewandowska', 'Zieliński', 'Szymańska',
                'Woźniak', 'Dąbrowski', 'Kozłowska', 'Jabłoński', 'Mazur', 'Krawczyk']),
    'arabic': ('GF', ['Mohammed', 'Fatima', 'Omar', 'Layla', 'Youssef', 'Nour', 'Khalid', 'Mariam', 'Hassan',
                      'Rania', 'Tariq', 'Samira', 'Ahmad', 'Huda'],
               ['Al-Masri', 'Haddad', 'Khoury', 'El-Sayed', 'Al-Rashid', 'Mansour', 'Nasser', 'Aziz', 'Saleh',
                'Al-Farsi', 'Hamdan', 'Qureshi']),
    'indian': ('GF', ['Priya', 'Arjun', 'Ananya', 'Rohan', 'Lakshmi', 'Vikram', 'Deepika', 'Suresh', 'Kavya',
                      'Aditya', 'Meera', 'Rahul', 'Sanjana', 'Karthik', 'Divya', 'Venkatesh', 'Ishaan', 'Pooja',
                      'Harpreet', 'Gurpreet', 'Anirban', 'Sourav'],
               ['Raman', 'Sharma', 'Patel', 'Iyer', 'Reddy', 'Nair', 'Gupta', 'Chatterjee', 'Banerjee',
                'Krishnan', 'Menon', 'Singh', 'Desai', 'Kulkarni', 'Subramanian', 'Venkataraman', 'Mukherjee',
                'Choudhury', 'Pillai', 'Joshi']),
    'spanish': ('ES', ['María José', 'Alejandro', 'Lucía', 'Javier', 'Carmen', 'Sofía', 'Diego', 'Valentina',
                       'Mateo', 'Isabel', 'Andrés', 'Guadalupe', 'José Luis'],
                ['García', 'López', 'Martínez', 'Rodríguez', 'Fernández', 'González', 'Sánchez', 'Pérez', 'Gómez',
                 'Ruiz', 'Hernández', 'Jiménez', 'Díaz', 'Moreno', 'Álvarez', 'Romero', 'Castillo', 'Vargas']),
    'portuguese': ('GF', ['João', 'Ana', 'Thiago', 'Beatriz', 'Gabriel', 'Larissa', 'Rafael', 'Camila'],
                   ['Silva', 'Santos', 'Oliveira', 'Souza', 'Ferreira', 'Costa', 'Carvalho', 'Almeida',
                    'Pereira']),
    'turkish': ('GF', ['Mehmet', 'Ayşe', 'Mustafa', 'Elif', 'Emre', 'Zeynep', 'Burak', 'Selin', 'Can', 'Gülşen',
                       'Oğuz', 'İbrahim'],
                ['Yılmaz', 'Kaya', 'Demir', 'Şahin', 'Çelik', 'Yıldız', 'Öztürk', 'Aydın', 'Arslan', 'Doğan',
                 'Kılıç', 'Aksoy']),
    'greek': ('GF', ['Giorgos', 'Eleni', 'Dimitris', 'Maria', 'Konstantinos', 'Katerina', 'Nikos', 'Sofia',
                     'Yannis', 'Athina'],
              ['Papadopoulos', 'Nikolaou', 'Georgiou', 'Pappas', 'Konstantinidis', 'Vlachos', 'Oikonomou',
               'Antonopoulou', 'Karagiannis', 'Dimitriou']),
    'nordic': ('GF', ['Sigrid', 'Magnus', 'Astrid', 'Bjørn', 'Ingrid', 'Lars', 'Freya', 'Henrik', 'Solveig',
                      'Eirik', 'Åsa', 'Linnea', 'Oskar', 'Signe'],
               ['Johansson', 'Nilsson', 'Andersen', 'Lindqvist', 'Halvorsen', 'Bergström', 'Nørgaard', 'Hansen',
                'Eriksson', 'Sørensen', 'Virtanen', 'Korhonen', 'Guðmundsdóttir']),
    'irish': ('GF', ['Siobhán', 'Niamh', 'Cian', 'Aoife', 'Oisín', 'Saoirse', 'Ciarán', 'Róisín', 'Pádraig',
                     'Eoin', 'Caoimhe'],
              ["O'Brien", 'Ó Súilleabháin', 'McCarthy', 'Gallagher', "O'Sullivan", 'Ní Bhriain', 'Doherty',
               'Kavanagh', 'Fitzgerald', 'Byrne', 'Mac Giolla Phádraig']),
    'anglo': ('GF', ['James', 'Emily', 'Michael', 'Sarah', 'David', 'Jessica', 'Robert', 'Ashley', 'Tyler',
                     'Hannah', 'Brandon', 'Megan', 'Kevin', 'Rachel'],
              ['Smith', 'Johnson', 'Williams', 'Brown', 'Miller', 'Davis', 'Wilson', 'Anderson', 'Taylor',
               'Thompson', 'Harris', 'Clark', 'Walker', 'Hughes']),
    'german': ('GF', ['Jürgen', 'Lena', 'Matthias', 'Anja', 'Florian', 'Katrin', 'Tobias', 'Sabine'],
               ['Müller', 'Schmidt', 'Schneider', 'Fischer', 'Weber', 'Becker', 'Schäfer', 'Hoffmann', 'Krüger',
                'Zimmermann']),
    'french': ('GF', ['Amélie', 'Théo', 'Camille', 'Louis', 'Chloé', 'Étienne', 'Margaux', 'Hugo'],
               ['Dubois', 'Lefèvre', 'Moreau', 'Laurent', 'Girard', 'Rousseau', 'Fontaine', 'Chevalier']),
    'italian': ('GF', ['Giulia', 'Lorenzo', 'Francesca', 'Matteo', 'Chiara', 'Alessandro'],
                ['Rossi', 'Russo', 'Ferrari', 'Esposito', 'Bianchi', 'Romano', 'Colombo', 'Ricci']),
    'ukrainian': ('GF', ['Olena', 'Dmytro', 'Natalia', 'Sergei', 'Anastasia', 'Oleksandr', 'Yulia', 'Ivan'],
                  ['Kovalenko', 'Shevchenko', 'Ivanova', 'Petrov', 'Bondarenko', 'Smirnova', 'Kuznetsov',
                   'Melnyk']),
    'persian': ('GF', ['Arash', 'Shirin', 'Dariush', 'Leila', 'Kaveh', 'Parisa'],
                ['Hosseini', 'Tehrani', 'Karimi', 'Moradi', 'Rahimi', 'Jafari']),
    'filipino': ('GF', ['Maricel', 'Jerome', 'Rowena', 'Paolo'],
                 ['Dela Cruz', 'Reyes', 'Bautista', 'Villanueva', 'Mendoza']),
    'eastafrican': ('GF', ['Wanjiru', 'Kamau', 'Amani', 'Achieng', 'Baraka', 'Njeri'],
                    ['Mwangi', 'Otieno', 'Kariuki', 'Odhiambo', 'Wambui', 'Mutua']),
    'hebrew': ('GF', ['Noa', 'Eitan', 'Yael', 'Avi'], ['Cohen', 'Levi', 'Mizrahi', 'Friedman']),
    'dutch': ('GF', ['Sanne', 'Daan', 'Femke', 'Joris'], ['de Vries', 'van den Berg', 'Bakker', 'Visser',
                                                         'van Dijk']),
    'hungarian': ('FG', ['Zsófia', 'Bence', 'Réka', 'Gergő'], ['Nagy', 'Kovács', 'Szabó', 'Tóth']),
}
VIET_MIDDLE = ['Văn', 'Thị', 'Minh', 'Ngọc', 'Đức', 'Thanh']

# names in non-Latin scripts, with a romanisation used for e-mail local parts
SCRIPT_NAMES = [
    ('王芳', 'fang', 'wang'), ('李伟', 'wei', 'li'), ('张秀英', 'xiuying', 'zhang'), ('陈杰', 'jie', 'chen'),
    ('김민준', 'minjun', 'kim'), ('박서연', 'seoyeon', 'park'), ('이지호', 'jiho', 'lee'),
    ('محمد الأحمد', 'mohammed', 'alahmad'), ('فاطمة حداد', 'fatima', 'haddad'), ('يوسف منصور', 'youssef', 'mansour'),
    ('Γιώργος Παπαδόπουλος', 'giorgos', 'papadopoulos'), ('Ελένη Νικολάου', 'eleni', 'nikolaou'),
    ('Олена Коваленко', 'olena', 'kovalenko'), ('Дмитрий Смирнов', 'dmitry', 'smirnov'),
    ('田中 陽子', 'yoko', 'tanaka'), ('佐藤 健', 'ken', 'sato'), ('नेहा शर्मा', 'neha', 'sharma'),
    ('राहुल वर्मा', 'rahul', 'verma'), ('דניאל כהן', 'daniel', 'cohen'),
]

ORIGIN_KEYS = list(ORIGINS)
ASCII_MAP = {'ł': 'l', 'Ł': 'L', 'ø': 'o', 'Ø': 'O', 'æ': 'ae', 'ß': 'ss', 'ı': 'i', 'đ': 'd', 'Đ': 'D',
             'ð': 'd', 'þ': 'th', 'Þ': 'Th', 'İ': 'I'}


def asciify(s):
    s = ''.join(ASCII_MAP.get(c, c) for c in s)
    s = unicodedata.normalize('NFKD', s)
    s = ''.join(c for c in s if not unicodedata.combining(c))
    s = s.encode('ascii', 'ignore').decode()
    return re.sub('[^a-z0-9]', '', s.lower())


FREE_DOMAINS = ['gmail.com', 'gmail.com', 'gmail.com', 'yahoo.com', 'outlook.com', 'hotmail.co.uk', 'proton.me',
                'icloud.com', 'gmx.de', 'web.de', 'wp.pl', 'naver.com', 'qq.com', '163.com', 'yandex.ru',
                'yahoo.co.in', 'rediffmail.com', 'libero.it', 'orange.fr', 'hotmail.com', 'live.com.au',
                'yahoo.com.br', 'mail.com', 'fastmail.fm', 'eircom.net', 'seznam.cz']
WORK_DOMAINS = ['northwind-health.com', 'brightpath.io', 'acmeinsure.co', 'kestrel-labs.dev', 'tidewater.org',
                'harbourfreight.co.uk', 'lumenpay.com', 'orbitcart.io', 'greenleafclinic.org', 'quillhq.com',
                'fernbank.edu', 'helixbio.de', 'saffron-travel.in', 'mapleridge.ca', 'coralbank.com.au']


class Person:
    def __init__(self, given, family, full, ag, af, origin):
        self.given, self.family, self.full = given, family, full
        self.ag, self.af, self.origin = ag or 'user', af or 'x', origin

    def email(self, domain=None):
        d = domain or (ch(FREE_DOMAINS) if coin(0.6) else ch(WORK_DOMAINS))
        g, f = self.ag, self.af
        form = ri(0, 7)
        local = [f'{g}.{f}', f'{g[0]}{f}', f'{g}{f[0]}', f'{g}_{f}{ri(1, 99)}', f'{f}.{g}', f'{g}.{f}{ri(70, 99)}',
                 f'{g}{ri(1, 999)}', f'{g}-{f}'][form]
        return f'{local}@{d}'


def person(origin=None, script=False):
    if script or (origin is None and coin(0.04)):
        full, g, f = ch(SCRIPT_NAMES)
        return Person(full.split()[0] if ' ' in full else full, '', full, g, f, 'script')
    origin = origin or ch(ORIGIN_KEYS)
    order, givens, fams = ORIGINS[origin]
    g = ch(givens)
    if order == 'ES':
        f1, f2 = R.sample(fams, 2)
        fam = f'{f1} {f2}' if coin(0.75) else f1
        full = f'{g} {fam}'
        return Person(g, fam, full, asciify(g.split()[0]), asciify(f1), origin)
    f = ch(fams)
    if origin == 'vietnamese':
        full = f'{f} {ch(VIET_MIDDLE)} {g}'
        return Person(g, f, full, asciify(g), asciify(f), origin)
    if order == 'FG':
        full = f'{f} {g}' if (origin != 'chinese' or coin(0.5)) else f'{g} {f}'
        return Person(g, f, full, asciify(g), asciify(f), origin)
    if coin(0.12):
        full = f'{g} {ch(string.ascii_uppercase.replace("X", ""))}. {f}'
    else:
        full = f'{g} {f}'
    return Person(g, f, full, asciify(g), asciify(f), origin)


def nm(p, mode=None):
    """render a name, sometimes lowercase / ALL CAPS (data exports)."""
    mode = mode or ch(['n'] * 7 + ['l', 'u'])
    if mode == 'l':
        return p.full.lower()
    if mode == 'u':
        return p.full.upper()
    if mode == 'lf' and p.origin not in ('script', 'vietnamese', 'chinese', 'korean', 'hungarian'):
        return f'{p.family}, {p.given}'
    return p.full


# ----------------------------------------------------------------------------------
# value generators
# ----------------------------------------------------------------------------------
def luhn_ok(num):
    d = [int(c) for c in num if c.isdigit()]
    s = 0
    for i, x in enumerate(reversed(d)):
        if i % 2 == 1:
            x *= 2
            if x > 9:
                x -= 9
        s += x
    return s % 10 == 0


def luhn_complete(prefix, length):
    body = prefix + ''.join(str(ri(0, 9)) for _ in range(length - len(prefix) - 1))
    for c in '0123456789':
        if luhn_ok(body + c):
            return body + c


def luhn_invalid(length=16, prefix=''):
    while True:
        s = prefix + ''.join(str(ri(0, 9)) for _ in range(length - len(prefix)))
        if not luhn_ok(s):
            return s


TEST_CARDS = ['4242424242424242', '4111111111111111', '5555555555554444', '378282246310005', '6011111111111117',
              '4000056655665556', '5105105105105100', '3566002020360505', '4012888888881881']


def card_number(brand=None):
    brand = brand or ch(['visa', 'visa', 'visa', 'mc', 'mc', 'amex', 'disc', 'jcb', 'diners', 'unionpay', 'mc2',
                         'test'])
    if brand == 'test':
        return ch(TEST_CARDS)
    if brand == 'visa':
        return luhn_complete('4', 16)
    if brand == 'mc':
        return luhn_complete(str(ri(51, 55)), 16)
    if brand == 'mc2':
        return luhn_complete(str(ri(2221, 2720)), 16)
    if brand == 'amex':
        return luhn_complete(ch(['34', '37']), 15)
    if brand == 'disc':
        return luhn_complete(ch(['6011', '65', '644']), 16)
    if brand == 'jcb':
        return luhn_complete(str(ri(3528, 3589)), 16)
    if brand == 'diners':
        return luhn_complete(ch(['36', '38', '300']), 14)
    if brand == 'unionpay':
        return luhn_complete('62' + str(ri(2126, 2925))[:2], 16)
    raise ValueError(brand)


def fmt_card(n, style=None):
    style = style or ch(['plain', 'space', 'space', 'dash'])
    if style == 'plain':
        return n
    sep = ' ' if style == 'space' else '-'
    if len(n) == 15:
        return sep.join([n[:4], n[4:10], n[10:]])
    if len(n) == 14:
        return sep.join([n[:4], n[4:10], n[10:]])
    return sep.join(n[i:i + 4] for i in range(0, len(n), 4))


def ssn_parts():
    while True:
        a = ri(1, 899)
        if a != 666:
            break
    return f'{a:03d}', f'{ri(1, 99):02d}', f'{ri(1, 9999):04d}'


def ssn(style=None):
    a, g, s = ssn_parts()
    style = style or ch(['dash'] * 6 + ['plain', 'plain', 'space'])
    if style == 'plain':
        return a + g + s
    if style == 'space':
        return f'{a} {g} {s}'
    return f'{a}-{g}-{s}'


IBAN_SPEC = {  # country: (total length, bban builder)
    'DE': lambda: rs(18, '0123456789'),
    'GB': lambda: ch(['NWBK', 'BARC', 'LOYD', 'HBUK', 'MIDL', 'CITI']) + rs(14, '0123456789'),
    'FR': lambda: rs(10, '0123456789') + rs(11, UPNUM) + rs(2, '0123456789'),
    'ES': lambda: rs(20, '0123456789'),
    'IT': lambda: ch(string.ascii_uppercase) + rs(10, '0123456789') + rs(12, UPNUM),
    'NL': lambda: ch(['ABNA', 'RABO', 'INGB', 'TRIO', 'SNSB']) + rs(10, '0123456789'),
    'BE': lambda: rs(12, '0123456789'),
    'PL': lambda: rs(24, '0123456789'),
    'TR': lambda: rs(5, '0123456789') + '0' + rs(16, '0123456789'),
    'GR': lambda: rs(7, '0123456789') + rs(16, UPNUM),
    'NO': lambda: rs(11, '0123456789'),
    'IE': lambda: ch(['AIBK', 'BOFI', 'IPBS']) + rs(14, '0123456789'),
    'CH': lambda: rs(5, '0123456789') + rs(12, UPNUM),
    'AT': lambda: rs(16, '0123456789'),
    'SE': lambda: rs(20, '0123456789'),
    'DK': lambda: rs(14, '0123456789'),
    'PT': lambda: rs(21, '0123456789'),
    'SA': lambda: rs(2, '0123456789') + rs(18, UPNUM),
    'AE': lambda: rs(19, '0123456789'),
    'FI': lambda: rs(14, '0123456789'),
}


def iban_check(cc, bban):
    s = bban + cc + '00'
    num = ''.join(str(int(c, 36)) for c in s)
    return f'{98 - int(num) % 97:02d}'


def iban_valid(s):
    s = s.replace(' ', '')
    r = s[4:] + s[:4]
    num = ''.join(str(int(c, 36)) for c in r)
    return int(num) % 97 == 1


def iban(cc=None, grouped=None):
    cc = cc or ch(list(IBAN_SPEC))
    bban = IBAN_SPEC[cc]()
    s = cc + iban_check(cc, bban) + bban
    assert iban_valid(s)
    if grouped is None:
        grouped = coin(0.5)
    if grouped:
        return ' '.join(s[i:i + 4] for i in range(0, len(s), 4))
    return s


BICS = ['DEUTDEFF', 'COBADEFFXXX', 'NWBKGB2L', 'BARCGB22', 'BNPAFRPP', 'INGBNL2A', 'RABONL2U', 'CAIXESBBXXX',
        'UNCRITMM', 'PKOPPLPW', 'TGBATRIS', 'NDEANOKK', 'AIBKIE2D', 'UBSWCHZH80A', 'ESSESESS', 'DABADKKK',
        'BCOMPTPL', 'NCBKSAJE', 'EBILAEAD', 'OKOYFIHH', 'CHASUS33', 'BOFAUS3N']


def public_ipv4():
    while True:
        a = ri(1, 223)
        if a in (10, 127, 169, 172, 192, 100, 0, 198, 203):
            continue
        return f'{a}.{ri(0, 255)}.{ri(0, 255)}.{ri(1, 254)}'


def private_ipv4():
    k = ri(0, 2)
    if k == 0:
        return f'10.{ri(0, 255)}.{ri(0, 255)}.{ri(1, 254)}'
    if k == 1:
        return f'172.{ri(16, 31)}.{ri(0, 255)}.{ri(1, 254)}'
    return f'192.168.{ri(0, 255)}.{ri(1, 254)}'


def doc_ipv4():
    return ch(['192.0.2.', '198.51.100.', '203.0.113.']) + str(ri(1, 254))


def ipv4():
    r = R.random()
    if r < 0.45:
        return public_ipv4()
    if r < 0.85:
        return private_ipv4()
    return doc_ipv4()


def ipv6():
    k = ri(0, 3)
    if k == 0:
        return '2001:db8:' + ':'.join(f'{ri(0, 0xffff):x}' for _ in range(2)) + '::' + f'{ri(1, 0xfff):x}'
    if k == 1:
        return ch(['2a02', '2a01', '2600', '2607', '2406', '2c0f']) + ':' + ':'.join(
            f'{ri(0, 0xffff):x}' for _ in range(7))
    if k == 2:
        return 'fe80::' + ':'.join(f'{ri(0, 0xffff):x}' for _ in range(4))
    return 'fd' + f'{ri(0, 255):02x}' + ':' + f'{ri(0, 0xffff):x}' + ':' + f'{ri(0, 0xffff):x}' + '::' + \
        f'{ri(1, 0xffff):x}'


def ip_any():
    return ipv6() if coin(0.2) else ipv4()


# phones --------------------------------------------------------------------------
def d(n):
    return ''.join(str(ri(0, 9)) for _ in range(n))


def nz(n):
    return str(ri(2, 9)) + d(n - 1)


def us_parts():
    area = ch(['212', '415', '646', '312', '617', '206', '512', '303', '404', '305', '702', '213', '718', '919',
               '503', '612', '480', '214', '267', '858', '571', '347'])
    return area, nz(3), d(4)


def phone(country=None):
    country = country or ch(['US'] * 6 + ['UK', 'UK', 'IN', 'IN', 'NG', 'DE', 'FR', 'VN', 'KR', 'CN', 'PL', 'TR',
                                          'GR', 'NO', 'IE', 'AU', 'CA', 'ES', 'BR', 'MX', 'SA', 'AE', 'JP', 'KE',
                                          'IT', 'NL', 'SE'])
    if country == 'US' or country == 'CA':
        a, b, c = us_parts() if country == 'US' else (ch(['416', '604', '514', '403', '613', '647']), nz(3), d(4))
        return ch([f'({a}) {b}-{c}', f'{a}-{b}-{c}', f'+1 {a}-{b}-{c}', f'{a}.{b}.{c}', f'+1{a}{b}{c}',
                   f'+1 ({a}) {b}-{c}', f'1-{a}-{b}-{c}', f'{a} {b} {c}'])
    if country == 'UK':
        return ch([f'+44 20 7{d(3)} {d(4)}', f'07{ri(400, 999)} {d(6)}', f'+44 7{ri(400, 999)} {d(6)}',
                   f'0161 {nz(3)} {d(4)}', f'0151 {nz(3)} {d(4)}', f'(0117) {nz(3)} {d(4)}',
                   f'+447{ri(400, 999)}{d(6)}'])
    if country == 'IN':
        return ch([f'+91 9{d(4)} {d(5)}', f'+91-{ri(6, 9)}{d(9)}', f'0{ri(6, 9)}{d(4)} {d(5)}',
                   f'+91 80 {nz(4)} {d(4)}', f'{ri(7, 9)}{d(9)}'])
    if country == 'NG':
        return ch([f'+234 80{ri(2, 9)} {d(3)} {d(4)}', f'0{ch(["803", "806", "813", "703", "905"])} {d(3)} {d(4)}',
                   f'+23481{d(8)}'])
    if country == 'DE':
        return ch([f'+49 30 {nz(8)}', f'+49 1{ri(51, 79)} {d(7)}', f'030 {nz(3)} {d(4)}', f'(089) {nz(7)}',
                   f'+49 (0)40 {nz(6)}'])
    if country == 'FR':
        return ch([f'+33 6 {d(2)} {d(2)} {d(2)} {d(2)}', f'06 {d(2)} {d(2)} {d(2)} {d(2)}',
                   f'+33 1 {d(2)} {d(2)} {d(2)} {d(2)}', f'01.{d(2)}.{d(2)}.{d(2)}.{d(2)}'])
    if country == 'VN':
        return ch([f'+84 9{d(1)} {d(3)} {d(4)}', f'09{d(2)} {d(3)} {d(3)}', f'+84 28 {d(4)} {d(4)}'])
    if country == 'KR':
        return ch([f'+82 10-{d(4)}-{d(4)}', f'010-{d(4)}-{d(4)}', f'+82 2-{d(4)}-{d(4)}'])
    if country == 'CN':
        return ch([f'+86 13{d(1)} {d(4)} {d(4)}', f'+86 10 {d(4)} {d(4)}', f'1{ri(3, 8)}{d(9)}'])
    if country == 'PL':
        return ch([f'+48 {ri(5, 8)}{d(2)} {d(3)} {d(3)}', f'{ri(5, 8)}{d(2)}-{d(3)}-{d(3)}',
                   f'+48 22 {d(3)} {d(2)} {d(2)}'])
    if country == 'TR':
        return ch([f'+90 5{d(2)} {d(3)} {d(2)} {d(2)}', f'0 (5{d(2)}) {d(3)} {d(2)} {d(2)}',
                   f'+90 212 {d(3)} {d(2)} {d(2)}'])
    if country == 'GR':
        return ch([f'+30 69{d(1)} {d(3)} {d(4)}', f'+30 210 {d(3)} {d(4)}', f'69{d(8)}'])
    if country == 'NO':
        return ch([f'+47 {ri(4, 9)}{d(2)} {d(2)} {d(3)}', f'+47 {d(2)} {d(2)} {d(2)} {d(2)}'])
    if country == 'IE':
        return ch([f'+353 8{ri(3, 9)} {d(3)} {d(4)}', f'08{ri(3, 9)} {d(3)} {d(4)}', f'+353 1 {d(3)} {d(4)}'])
    if country == 'AU':
        return ch([f'+61 4{d(2)} {d(3)} {d(3)}', f'04{d(2)} {d(3)} {d(3)}', f'(02) {nz(4)} {d(4)}',
                   f'+61 3 {nz(4)} {d(4)}'])
    if country == 'ES':
        return ch([f'+34 6{d(2)} {d(2)} {d(2)} {d(2)}', f'+34 91 {d(3)} {d(2)} {d(2)}', f'6{d(2)} {d(3)} {d(3)}'])
    if country == 'BR':
        return ch([f'+55 11 9{d(4)}-{d(4)}', f'(21) 9{d(4)}-{d(4)}', f'+55 (31) 9{d(4)}-{d(4)}'])
    if country == 'MX':
        return ch([f'+52 55 {d(4)} {d(4)}', f'+52 1 33 {d(4)} {d(4)}'])
    if country == 'SA':
        return ch([f'+966 5{d(1)} {d(3)} {d(4)}', f'05{d(1)} {d(3)} {d(4)}'])
    if country == 'AE':
        return ch([f'+971 5{d(1)} {d(3)} {d(4)}', f'+971 4 {d(3)} {d(4)}'])
    if country == 'JP':
        return ch([f'+81 90-{d(4)}-{d(4)}', f'03-{d(4)}-{d(4)}', f'+81 3 {d(4)} {d(4)}'])
    if country == 'KE':
        return ch([f'+254 7{d(2)} {d(3)} {d(3)}', f'07{d(2)} {d(3)} {d(3)}'])
    if country == 'IT':
        return ch([f'+39 3{d(2)} {d(3)} {d(4)}', f'+39 06 {d(4)} {d(4)}'])
    if country == 'NL':
        return ch([f'+31 6 {d(8)}', f'+31 20 {d(3)} {d(4)}', f'06-{d(8)}'])
    if country == 'SE':
        return ch([f'+46 70 {d(3)} {d(2)} {d(2)}', f'070-{d(3)} {d(2)} {d(2)}'])
    raise ValueError(country)


def e164():
    k = ri(0, 5)
    if k <= 2:
        a, b, c = us_parts()
        return f'+1{a}{b}{c}'
    if k == 3:
        return f'+447{ri(400, 999)}{d(6)}'
    if k == 4:
        return f'+91{ri(7, 9)}{d(9)}'
    return f'+234{ch(["803", "806", "813"])}{d(7)}'


# addresses -----------------------------------------------------------------------
US_CITIES = [('Austin', 'TX', '787'), ('Springfield', 'IL', '627'), ('Portland', 'OR', '972'), ('Denver', 'CO', '802'),
             ('Brooklyn', 'NY', '112'), ('Oakland', 'CA', '946'), ('San Jose', 'CA', '951'), ('Tampa', 'FL', '336'),
             ('Seattle', 'WA', '981'), ('Chicago', 'IL', '606'), ('Pittsburgh', 'PA', '152'), ('Columbus', 'OH', '432'),
             ('Atlanta', 'GA', '303'), ('Phoenix', 'AZ', '850'), ('Minneapolis', 'MN', '554'), ('Raleigh', 'NC', '276'),
             ('Boise', 'ID', '837'), ('Madison', 'WI', '537'), ('Albany', 'NY', '122'), ('Newark', 'NJ', '071'),
             ('Houston', 'TX', '770'), ('Miami', 'FL', '331'), ('Ann Arbor', 'MI', '481'), ('Nashville', 'TN', '372')]
US_STREETS = ['Maple', 'Oak', 'Cedar', 'Elm', 'Pine', 'Willow', 'Lakeview', 'Hillcrest', 'Sunset', 'Riverside',
              'Magnolia', 'Juniper', 'Chestnut', 'Walnut', 'Highland', 'Meadow', 'Jefferson', 'Lincoln', 'Franklin',
              'Washington', 'Kingsley', 'Bluebonnet', 'Aspen', 'Harbor']
US_SUFFIX = ['St', 'Ave', 'Rd', 'Blvd', 'Dr', 'Ln', 'Ct', 'Way', 'Street', 'Avenue', 'Drive', 'Pl']
UK_PLACES = [('Bristol', 'BS6 5LN'), ('Manchester', 'M14 6HR'), ('London', 'SW11 4NB'), ('Edinburgh', 'EH7 5QS'),
             ('Leeds', 'LS6 2AB'), ('Cardiff', 'CF24 4HQ'), ('Glasgow', 'G12 8QQ'), ('Birmingham', 'B13 9RT'),
             ('Liverpool', 'L17 7AE'), ('Norwich', 'NR2 3JF'), ('London', 'E8 3PN'), ('Oxford', 'OX4 1DQ'),
             ('Belfast', 'BT9 6GN'), ('Brighton', 'BN2 1AL')]
UK_STREETS = ['Ashgrove Road', 'Victoria Street', 'Church Lane', 'Mill Road', 'Albert Terrace', 'Kingsway',
              'Beechwood Avenue', 'Station Road', 'Park Crescent', 'Hawthorn Close', 'Gloucester Road',
              'Queen\'s Drive']
CA_PLACES = [('Toronto', 'ON', 'M5S 1G5', 'Harbord St'), ('Toronto', 'ON', 'M6G 1K5', 'Bloor St W'),
             ('Vancouver', 'BC', 'V6K 2J1', 'W 4th Ave'), ('Montréal', 'QC', 'H2W 1S6', 'rue Saint-Denis'),
             ('Calgary', 'AB', 'T2N 1N4', 'Kensington Rd NW'), ('Ottawa', 'ON', 'K1S 3W7', 'Bank St'),
             ('Halifax', 'NS', 'B3H 2Y9', 'Robie St')]
AU_PLACES = [('Fitzroy', 'VIC', '3065'), ('Newtown', 'NSW', '2042'), ('West End', 'QLD', '4101'),
             ('Fremantle', 'WA', '6160'), ('Glenelg', 'SA', '5045'), ('Braddon', 'ACT', '2612')]
AU_STREETS = ['Smith St', 'King St', 'Boundary St', 'Hampton Rd', 'Jetty Rd', 'Lonsdale St', 'Brunswick St']
IN_PLACES = [('Indiranagar', 'Bengaluru', '560038'), ('Andheri West', 'Mumbai', '400053'),
             ('Kothrud', 'Pune', '411038'), ('Banjara Hills', 'Hyderabad', '500034'),
             ('Adyar', 'Chennai', '600020'), ('Salt Lake', 'Kolkata', '700091'), ('Vasant Kunj', 'New Delhi', '110070')]
IN_BUILDINGS = ['Sai Residency', 'Prestige Lakeside', 'Green Glen Apartments', 'Shanti Niketan', 'Lodha Aurum',
                'Sunrise Enclave', 'Brigade Meadows']
IN_ROADS = ['14th Cross', '100 Feet Road', 'Link Road', 'LBS Marg', 'MG Road', '3rd Main', 'Karve Road']
DE_PLACES = [('10969', 'Berlin'), ('80331', 'München'), ('20095', 'Hamburg'), ('50667', 'Köln'),
             ('60311', 'Frankfurt am Main'), ('04109', 'Leipzig'), ('70173', 'Stuttgart')]
DE_STREETS = ['Lindenstraße', 'Hauptstraße', 'Schillerstraße', 'Bahnhofstraße', 'Gartenweg', 'Am Markt',
              'Goethestraße', 'Friedrichstraße', 'Kastanienallee']


def address_lines(country=None):
    """returns a list of lines (strings) of one postal address"""
    country = country or ch(['US'] * 5 + ['UK', 'UK', 'CA', 'AU', 'IN', 'DE'])
    if country == 'US':
        city, st, z = ch(US_CITIES)
        l1 = f'{ri(12, 9899)} {ch(US_STREETS)} {ch(US_SUFFIX)}'
        apt = ch(['', '', '', f'Apt {ri(1, 40)}{ch("ABCD")}', f'Unit {ri(100, 999)}', f'#{ri(2, 30)}'])
        lines = [l1] + ([apt] if apt else []) + [f'{city}, {st} {z}{d(2)}']
        return lines
    if country == 'UK':
        town, pc = ch(UK_PLACES)
        flat = ch(['', '', f'Flat {ri(1, 12)}', f'Flat {ri(1, 6)}{ch("ABC")}'])
        l1 = f'{ri(1, 180)} {ch(UK_STREETS)}'
        return ([flat] if flat else []) + [l1, town, pc]
    if country == 'CA':
        city, prov, pc, street = ch(CA_PLACES)
        unit = f'{ri(101, 2405)}-' if coin(0.4) else ''
        return [f'{unit}{ri(10, 999)} {street}', f'{city}, {prov} {pc}']
    if country == 'AU':
        sub, st, pc = ch(AU_PLACES)
        unit = f'Unit {ri(1, 20)}/' if coin(0.4) else ''
        return [f'{unit}{ri(2, 300)} {ch(AU_STREETS)}', f'{sub} {st} {pc}']
    if country == 'IN':
        area, city, pin = ch(IN_PLACES)
        return [f'Flat {ri(101, 1204)}, {ch(IN_BUILDINGS)}', f'{ch(IN_ROADS)}, {area}', f'{city} {pin}']
    if country == 'DE':
        plz, city = ch(DE_PLACES)
        return [f'{ch(DE_STREETS)} {ri(1, 140)}{ch(["", "", "a", "b"])}', f'{plz} {city}']
    raise ValueError(country)


def address(country=None, multiline=False):
    country = country or ch(['US'] * 5 + ['UK', 'UK', 'CA', 'AU', 'IN', 'DE'])
    lines = address_lines(country)
    if multiline:
        return '\n'.join(lines)
    if country == 'UK':
        return ', '.join(lines[:-2] + [lines[-2] + ' ' + lines[-1]])
    return ', '.join(lines)


# dates ---------------------------------------------------------------------------
MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October',
          'November', 'December']


def rdate(y0, y1):
    start = dt.date(y0, 1, 1).toordinal()
    end = dt.date(y1, 12, 31).toordinal()
    return dt.date.fromordinal(ri(start, end))


def dob_date():
    return rdate(1942, 2006)


def fdate(x, style=None):
    style = style or ch(['iso', 'iso', 'us', 'us', 'eu', 'long', 'dmy_long', 'dot', 'short'])
    if style == 'iso':
        return x.isoformat()
    if style == 'us':
        return f'{x.month:02d}/{x.day:02d}/{x.year}'
    if style == 'eu':
        return f'{x.day:02d}/{x.month:02d}/{x.year}'
    if style == 'long':
        return f'{MONTHS[x.month - 1]} {x.day}, {x.year}'
    if style == 'dmy_long':
        return f'{x.day} {MONTHS[x.month - 1][:3]} {x.year}'
    if style == 'dot':
        return f'{x.day:02d}.{x.month:02d}.{x.year}'
    if style == 'short':
        return f'{x.month}/{x.day}/{x.year}'
    raise ValueError(style)


def dob(style=None):
    return fdate(dob_date(), style)


def recent_date(style='iso'):
    return fdate(rdate(2023, 2025), style)


def ts():
    x = rdate(2024, 2025)
    return f'{x.isoformat()}T{ri(0, 23):02d}:{ri(0, 59):02d}:{ri(0, 59):02d}.{ri(0, 999):03d}Z'


def ts_plain():
    x = rdate(2024, 2025)
    return f'{x.isoformat()} {ri(0, 23):02d}:{ri(0, 59):02d}:{ri(0, 59):02d}'


def hhmm():
    return f'{ri(7, 19):02d}:{ri(0, 59):02d}'


def hhmm_seq(n):
    start = ri(7 * 60, 18 * 60)
    out = []
    for _ in range(n):
        out.append(f'{start // 60:02d}:{start % 60:02d}')
        start += ri(0, 4)
    return out


def epoch():
    return str(ri(1700000000, 1760000000))


# ids (non-sensitive) ---------------------------------------------------------------
def uuid4():
    h = rs(32, HEX)
    return f'{h[:8]}-{h[8:12]}-4{h[13:16]}-{ch("89ab")}{h[17:20]}-{h[20:]}'


def sha1():
    return rs(40, HEX)


def sha256():
    return rs(64, HEX)


def trace_id():
    return rs(32, HEX)


def span_id():
    return rs(16, HEX)


def slack_uid():
    return 'U0' + rs(ri(7, 9), UPNUM)


def slack_cid():
    return 'C0' + rs(ri(7, 9), UPNUM)


def slack_tid():
    return 'T0' + rs(ri(7, 9), UPNUM)


def aws_account():
    return str(ri(100000000000, 999999999999))


def twilio_sid(prefix='AC'):
    return prefix + rs(32, HEX)


def stripe_id(prefix):
    return prefix + '_' + rs(ch([14, 24]), ALNUM)


def ticket():
    return ch(['OPS', 'SUP', 'INC', 'PAY', 'DATA', 'SEC', 'PLAT', 'CS']) + '-' + str(ri(100, 9999))


def order_id():
    return ch(['ORD-', '#', 'SO-', '', 'A']) + str(ri(100000, 99999999))


def version():
    return f'{ri(0, 12)}.{ri(0, 30)}.{ri(0, 20)}'


def version4():
    return f'{ri(1, 9)}.{ri(0, 20)}.{ri(0, 30)}.{ri(0, 300)}'


def port():
    return str(ch([3000, 5432, 6379, 8080, 8443, 9090, 9200, 27017, 5672, 15672, 3306, 4317, 9092, 2181, 6443, 51820]))


def git_sha(n=40):
    return rs(n, HEX)


# bank -------------------------------------------------------------------------------
def aba_routing():
    while True:
        first = ch(['01', '02', '03', '04', '05', '06', '07', '08', '09', '10', '11', '12', '21', '22', '23', '24',
                    '25', '26', '27', '28', '29', '30', '31', '32'])
        body = first + d(6)
        w = [3, 7, 1, 3, 7, 1, 3, 7]
        s = sum(int(c) * w[i] for i, c in enumerate(body))
        chk = (10 - s % 10) % 10
        return body + str(chk)


def bank_account():
    return d(ri(8, 12)) if coin(0.7) else str(ri(1, 9)) + d(ri(9, 14))


# ID documents --------------------------------------------------------------------------
def us_passport():
    if coin(0.5):
        return str(ri(1, 9)) + d(8)
    return ch('ACEFGHJKLMNPRSTUVWXYZ') + d(8)


def dl(state=None):
    state = state or ch(['CA', 'NY', 'FL', 'WA', 'IL', 'PA', 'TX', 'NJ', 'MI', 'OH', 'GA', 'AZ', 'MA', 'CO'])
    L = string.ascii_uppercase
    if state == 'CA':
        v = ch(L) + d(7)
    elif state == 'NY':
        v = ch([d(9), f'{d(3)} {d(3)} {d(3)}'])
    elif state == 'FL':
        v = f'{ch(L)}{d(3)}-{d(3)}-{d(2)}-{d(3)}-{d(1)}' if coin(0.7) else ch(L) + d(12)
    elif state == 'WA':
        v = 'WDL' + rs(9, UPNUM)
    elif state == 'IL':
        v = f'{ch(L)}{d(3)}-{d(4)}-{d(4)}' if coin(0.6) else ch(L) + d(11)
    elif state == 'PA':
        v = ch([d(8), f'{d(2)} {d(3)} {d(3)}'])
    elif state == 'TX':
        v = d(8)
    elif state == 'NJ':
        v = ch([ch(L) + d(14), f'{ch(L)}{d(4)} {d(5)} {d(5)}'])
    elif state == 'MI':
        v = ch(L) + d(12) if coin(0.5) else f'{ch(L)} {d(3)} {d(3)} {d(3)} {d(3)}'
    elif state == 'OH':
        v = rs(2, L) + d(6)
    elif state == 'GA':
        v = d(9)
    elif state == 'AZ':
        v = ch(L) + d(8)
    elif state == 'MA':
        v = 'S' + d(8)
    elif state == 'CO':
        v = f'{d(2)}-{d(3)}-{d(4)}'
    return state, v


STATE_NAMES = {'CA': 'California', 'NY': 'New York', 'FL': 'Florida', 'WA': 'Washington', 'IL': 'Illinois',
               'PA': 'Pennsylvania', 'TX': 'Texas', 'NJ': 'New Jersey', 'MI': 'Michigan', 'OH': 'Ohio',
               'GA': 'Georgia', 'AZ': 'Arizona', 'MA': 'Massachusetts', 'CO': 'Colorado'}


# secrets ------------------------------------------------------------------------------
WORDS = ['tangerine', 'orbit', 'lantern', 'falcon', 'granite', 'velvet', 'harbor', 'cobalt', 'maple', 'quartz',
         'saffron', 'tundra', 'ember', 'willow', 'pepper', 'nimbus', 'cactus', 'marble', 'otter', 'juniper']


def password(urlsafe=False):
    k = ri(0, 6)
    if k == 0:
        p = ch(WORDS).capitalize() + str(ri(1990, 2025)) + ch('!#$%*?')
    elif k == 1:
        p = rs(ri(14, 24), ALNUM + ('-_.~' if urlsafe else '!#%*-_=+.?@^'))
    elif k == 2:
        p = '-'.join(R.sample(WORDS, 3)) + '-' + str(ri(10, 99))
    elif k == 3:
        p = rs(ri(20, 32), ALNUM)
    elif k == 4:
        w = ch(WORDS)
        p = w[0].upper() + w[1:].replace('a', '@').replace('o', '0').replace('e', '3') + str(ri(10, 999)) + ch('!.#')
    elif k == 5:
        p = rs(ri(10, 14), string.ascii_lowercase + string.digits)
    else:
        p = ch(['Summer', 'Winter', 'Spring', 'Autumn']) + str(ri(2019, 2025)) + '!' + rs(3, string.digits)
    if urlsafe:
        p = re.sub(r'[^A-Za-z0-9\-_.~]', '', p) or rs(16)
    if re.fullmatch(r'[A-Za-z]+', p):
        p += str(ri(10, 99))
    return p


def aws_key_id(temp=False):
    return ('ASIA' if temp else 'AKIA') + rs(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567')


def aws_secret():
    return rs(40, ALNUM + '/+')


def aws_session():
    return ch(['IQoJb3JpZ2luX2VjE', 'FwoGZXIvYXdzE']) + rs(ri(300, 420), B64) + ch(['', '=', '=='])


def slack_bot():
    return f'xoxb-{ri(10 ** 10, 10 ** 12)}-{ri(10 ** 11, 10 ** 13)}-{rs(24)}'


def slack_user():
    return f'xoxp-{ri(10 ** 10, 10 ** 12)}-{ri(10 ** 10, 10 ** 12)}-{ri(10 ** 11, 10 ** 13)}-{rs(32, HEX)}'


def slack_app():
    return f'xapp-1-A{rs(10, UPNUM)}-{ri(10 ** 12, 10 ** 13)}-{rs(64, HEX)}'


def slack_webhook():
    return f'https://hooks.slack.com/services/T{rs(8, UPNUM)}/B{rs(ch([8, 10]), UPNUM)}/{rs(24)}'


def gh_pat():
    return ch(['ghp_', 'ghp_', 'gho_', 'ghs_', 'ghu_']) + rs(36)


def gh_fine():
    return 'github_pat_11' + rs(20, UPNUM) + '_' + rs(59)


def glpat():
    return 'glpat-' + rs(20, ALNUM + '-_')


def stripe_sk():
    return ch(['sk_live_', 'sk_live_', 'rk_live_']) + ch(['51', '4e']) + rs(ch([22, 97]))


def stripe_whsec():
    return 'whsec_' + rs(32)


def google_key():
    return 'AIza' + rs(35, B64URL)


def openai_key():
    if coin(0.7):
        return 'sk-proj-' + rs(74, B64URL) + 'T3BlbkFJ' + rs(74, B64URL)
    return 'sk-' + rs(20) + 'T3BlbkFJ' + rs(20)


def anthropic_key():
    return 'sk-ant-api03-' + rs(93, B64URL) + 'AA'


def npm_tok():
    return 'npm_' + rs(36)


def twilio_sk():
    return 'SK' + rs(32, HEX)


def hex32():
    return rs(32, HEX)


def sendgrid():
    return 'SG.' + rs(22, B64URL) + '.' + rs(43, B64URL)


def mailgun():
    return 'key-' + rs(32, HEX)


def newrelic():
    return 'NRAK-' + rs(27, UPNUM)


def postman():
    return 'PMAK-' + rs(24, HEX) + '-' + rs(34, HEX)


def linear():
    return 'lin_api_' + rs(40)


def digitalocean():
    return 'dop_v1_' + rs(64, HEX)


def vault():
    return ch(['hvs.', 'hvs.', 'hvb.']) + rs(ch([24, 90]), ALNUM + '_-')


def shopify():
    return ch(['shpat_', 'shpss_', 'shpca_']) + rs(32, HEX)


def hf():
    return 'hf_' + rs(34)


def databricks():
    return 'dapi' + rs(32, HEX)


def dockerhub():
    return 'dckr_pat_' + rs(27, ALNUM + '-_')


def grafana():
    return ch(['glsa_' + rs(32) + '_' + rs(8, HEX), 'glc_' + rs(60, ALNUM) + '=='])


def pypi():
    return 'pypi-AgEIcHlwaS5vcmc' + rs(ri(60, 140), B64URL)


def atlassian():
    return 'ATATT3xFfGF0' + rs(180, B64URL) + '=' + rs(8, HEX).upper()


def telegram():
    return f'{ri(10 ** 8, 10 ** 10)}:AA{rs(33, B64URL)}'


def discord():
    return rs(24, B64URL) + '.' + rs(6, B64URL) + '.' + rs(38, B64URL)


def azure_key():
    return b64(rbytes(64))


def wg_key():
    return b64(rbytes(32))


def age_key():
    return 'AGE-SECRET-KEY-1' + rs(58, 'QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L')


def doppler():
    return 'dp.st.' + ch(['prd', 'dev', 'stg']) + '.' + rs(43)


def pulumi():
    return 'pul-' + rs(40, HEX)


def sentry_tok():
    return 'sntrys_' + rs(ri(120, 160), B64URL)


def figma():
    return 'figd_' + rs(40, B64URL)


def notion():
    return ch(['secret_' + rs(43), 'ntn_' + rs(46)])


def square():
    return ch(['EAAA' + rs(60, B64URL), 'sq0atp-' + rs(22, B64URL), 'sq0csp-' + rs(43, B64URL)])


def mailchimp():
    return rs(32, HEX) + '-us' + str(ri(1, 21))


def cloudflare():
    return rs(40, B64URL)


def okta():
    return '00' + rs(40, B64URL)


def buildkite():
    return 'bkua_' + rs(40, HEX)


def circleci():
    return 'CCIPAT_' + rs(22) + '_' + rs(40, HEX)


def fly():
    return 'fo1_' + rs(43, B64URL)


def netlify():
    return 'nfp_' + rs(36)


def terraform_cloud():
    return rs(14) + '.atlasv1.' + rs(67)


def mapbox():
    return 'sk.eyJ1Ijoi' + rs(60, B64URL) + '.' + rs(22, B64URL)


def braintree():
    return f'access_token$production${rs(16, LOWNUM)}${rs(32, HEX)}'


def heroku():
    return 'HRKU-' + uuid4().upper().replace('-', '')[:32] if coin(0.5) else 'HRKU-AA' + rs(58, B64URL)


def rand_secret_generic():
    return ch([lambda: rs(32, HEX), lambda: rs(40), lambda: b64(rbytes(ch([24, 32, 48]))), lambda: rs(64, HEX)])()


def jwt(alg=None, claims=None):
    alg = alg or ch(['HS256', 'RS256', 'ES256'])
    hdr = {'alg': alg, 'typ': 'JWT'}
    if alg != 'HS256' and coin(0.6):
        hdr['kid'] = rs(ri(8, 20), B64URL)
    now = ri(1700000000, 1750000000)
    pl = claims or {}
    pl = dict(pl)
    pl.setdefault('sub', ch([uuid4(), str(ri(1000, 999999)), 'auth0|' + rs(24, HEX)]))
    if coin(0.5):
        pl['role'] = ch(['authenticated', 'service_role', 'admin', 'user'])
    pl['iat'] = now
    pl['exp'] = now + ch([900, 3600, 86400])
    sig = rs({'HS256': 43, 'RS256': 342, 'ES256': 86}[alg], B64URL)
    return b64u(json.dumps(hdr, separators=(',', ':')).encode()) + '.' + \
        b64u(json.dumps(pl, separators=(',', ':')).encode()) + '.' + sig


def pem_body(prefix, nbytes):
    raw = b64(rbytes(nbytes))
    body = prefix + raw[len(prefix):]
    return [body[i:i + 64] for i in range(0, len(body), 64)]


def pem_private(kind=None, lines_cut=None):
    kind = kind or ch(['rsa', 'pkcs8', 'ec', 'openssh', 'openssh'])
    if kind == 'rsa':
        head, pre, n = 'RSA PRIVATE KEY', 'MIIEowIBAAKCAQEA', 1190
    elif kind == 'pkcs8':
        head, pre, n = 'PRIVATE KEY', 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC', 1216
    elif kind == 'ec':
        head, pre, n = 'EC PRIVATE KEY', 'MHcCAQEEI', 121
    else:
        head, pre, n = 'OPENSSH PRIVATE KEY', 'b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW', 399
    lines = pem_body(pre, n)
    if kind == 'openssh':
        lines = [ln[:70] for ln in [''.join(lines)[i:i + 70] for i in range(0, len(''.join(lines)), 70)]]
    return f'-----BEGIN {head}-----\n' + '\n'.join(lines) + f'\n-----END {head}-----'


def pem_cert():
    lines = pem_body('MIID' + ch(['dzCCAl+gAwIBAgI', 'xTCCAq2gAwIBAgI', 'ZTCCAk2gAwIBAgIU']), ri(820, 980))
    return '-----BEGIN CERTIFICATE-----\n' + '\n'.join(lines) + '\n-----END CERTIFICATE-----'


def pem_public():
    lines = pem_body('MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA', 294)
    return '-----BEGIN PUBLIC KEY-----\n' + '\n'.join(lines) + '\n-----END PUBLIC KEY-----'


def ssh_pub(comment=None):
    comment = comment or ch(['deploy@ci', 'priya@laptop', 'ops@bastion', 'tomek@mbp', 'build@runner-3',
                             'root@db-replica'])
    if coin(0.5):
        return 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI' + rs(43, B64) + ' ' + comment
    return 'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ' + rs(ri(360, 540), B64) + ' ' + comment


# a pool of vendor tokens: (generator, env var name, prose name)
VENDORS = [
    (slack_bot, 'SLACK_BOT_TOKEN', 'slack bot token'),
    (slack_user, 'SLACK_USER_TOKEN', 'slack user token'),
    (slack_app, 'SLACK_APP_TOKEN', 'slack app-level token'),
    (gh_pat, 'GITHUB_TOKEN', 'github token'),
    (gh_fine, 'GH_PAT', 'github fine-grained PAT'),
    (glpat, 'GITLAB_TOKEN', 'gitlab token'),
    (stripe_sk, 'STRIPE_SECRET_KEY', 'stripe secret key'),
    (stripe_whsec, 'STRIPE_WEBHOOK_SECRET', 'stripe webhook secret'),
    (google_key, 'GOOGLE_MAPS_API_KEY', 'google maps key'),
    (openai_key, 'OPENAI_API_KEY', 'openai key'),
    (anthropic_key, 'ANTHROPIC_API_KEY', 'anthropic key'),
    (npm_tok, 'NPM_TOKEN', 'npm token'),
    (twilio_sk, 'TWILIO_API_KEY', 'twilio api key'),
    (hex32, 'TWILIO_AUTH_TOKEN', 'twilio auth token'),
    (sendgrid, 'SENDGRID_API_KEY', 'sendgrid key'),
    (mailgun, 'MAILGUN_API_KEY', 'mailgun key'),
    (hex32, 'DATADOG_API_KEY', 'datadog api key'),
    (lambda: rs(40, HEX), 'DD_APP_KEY', 'datadog app key'),
    (newrelic, 'NEW_RELIC_API_KEY', 'new relic user key'),
    (postman, 'POSTMAN_API_KEY', 'postman key'),
    (linear, 'LINEAR_API_KEY', 'linear api key'),
    (digitalocean, 'DIGITALOCEAN_TOKEN', 'DO token'),
    (vault, 'VAULT_TOKEN', 'vault token'),
    (shopify, 'SHOPIFY_ACCESS_TOKEN', 'shopify admin token'),
    (hf, 'HF_TOKEN', 'huggingface token'),
    (databricks, 'DATABRICKS_TOKEN', 'databricks PAT'),
    (dockerhub, 'DOCKERHUB_TOKEN', 'docker hub token'),
    (grafana, 'GRAFANA_TOKEN', 'grafana service account token'),
    (pypi, 'PYPI_TOKEN', 'pypi token'),
    (telegram, 'TELEGRAM_BOT_TOKEN', 'telegram bot token'),
    (discord, 'DISCORD_BOT_TOKEN', 'discord bot token'),
    (doppler, 'DOPPLER_TOKEN', 'doppler service token'),
    (pulumi, 'PULUMI_ACCESS_TOKEN', 'pulumi token'),
    (sentry_tok, 'SENTRY_AUTH_TOKEN', 'sentry auth token'),
    (figma, 'FIGMA_TOKEN', 'figma token'),
    (notion, 'NOTION_API_KEY', 'notion integration secret'),
    (square, 'SQUARE_ACCESS_TOKEN', 'square token'),
    (mailchimp, 'MAILCHIMP_API_KEY', 'mailchimp key'),
    (cloudflare, 'CLOUDFLARE_API_TOKEN', 'cloudflare token'),
    (okta, 'OKTA_API_TOKEN', 'okta api token'),
    (buildkite, 'BUILDKITE_API_TOKEN', 'buildkite token'),
    (circleci, 'CIRCLECI_TOKEN', 'circleci token'),
    (fly, 'FLY_API_TOKEN', 'fly token'),
    (netlify, 'NETLIFY_AUTH_TOKEN', 'netlify token'),
    (terraform_cloud, 'TFE_TOKEN', 'terraform cloud token'),
    (mapbox, 'MAPBOX_SECRET_TOKEN', 'mapbox secret token'),
    (braintree, 'BRAINTREE_ACCESS_TOKEN', 'braintree token'),
    (age_key, 'SOPS_AGE_KEY', 'age key'),
    (databricks, 'DATABRICKS_TOKEN', 'databricks token'),
    (lambda: rs(32, HEX), 'ALGOLIA_ADMIN_KEY', 'algolia admin key'),
    (lambda: rs(32, HEX), 'PAGERDUTY_ROUTING_KEY', 'pagerduty routing key'),
    (heroku, 'HEROKU_API_KEY', 'heroku key'),
    (atlassian, 'JIRA_API_TOKEN', 'jira api token'),
    (lambda: jwt('HS256', {'role': 'service_role', 'iss': 'supabase'}), 'SUPABASE_SERVICE_ROLE_KEY',
     'supabase service role key'),
]


def vendor():
    g, env, prose = ch(VENDORS)
    return g(), env, prose


# generic hard-negative things -------------------------------------------------------------
COMPANIES = ['Johnson & Johnson', 'Procter & Gamble', 'Goldman Sachs', 'Morgan Stanley', 'Ernst & Young',
             'Marks & Spencer', 'Dolce & Gabbana', 'Ben & Jerry\'s', 'Harley-Davidson', 'Rolls-Royce',
             'Hewlett Packard Enterprise', 'Charles Schwab', 'Wells Fargo', 'Lockheed Martin', 'Merrill Lynch']
PRODUCTS = ['Jenkins', 'Cassandra', 'Hudson', 'Ada', 'Grafana', 'Kafka', 'Airflow', 'Sentry', 'Luigi', 'Mercurial',
            'Kubernetes', 'Terraform', 'Argo', 'Vault', 'Consul', 'Nomad', 'Celery', 'Sidekiq', 'Rails']
REGIONS = ['us-east-1', 'us-west-2', 'eu-west-1', 'eu-central-1', 'ap-southeast-2', 'ap-south-1', 'europe-west3',
           'us-central1', 'asia-northeast1', 'westeurope', 'eastus2', 'uksouth', 'fra1', 'nyc3', 'sgp1']
OFFICES = ['the Berlin office', 'the Lagos office', 'our Dublin site', 'the Austin HQ', 'the Bengaluru office',
           'the Warsaw office', 'the Toronto office', 'the Sydney office', 'the Seoul office']
LONE_GIVEN = ['priya', 'tomek', 'ngozi', 'wei', 'siobhan', 'mehmet', 'lena', 'arjun', 'yuki', 'chidi', 'sofia',
              'lars', 'omar', 'ana', 'kenji', 'ifeoma', 'magnus', 'aoife', 'hye-jin', 'dmytro']
HOSTS = ['db-primary-01', 'api-gw-2', 'bastion-prod', 'worker-7', 'redis-cache-a', 'kafka-broker-3', 'ci-runner-12',
         'billing-svc', 'auth-svc-5f7c9', 'etl-node-04', 'web-canary', 'pg-replica-2']
INT_HOSTS = ['db.internal', 'pg-main.prod.svc.cluster.local', 'mysql-01.corp.lan', 'rds-prod.c9akciq32.eu-west-1.rds'
             '.amazonaws.com', 'orders-db.internal.example.net', 'postgres', 'db', 'timescale.prod.internal',
             'cluster0.mongodb.internal']
APP_NAMES = ['billing-api', 'checkout', 'ledger', 'notifier', 'kyc-service', 'crm-sync', 'payroll-export',
             'onboarding', 'claims-portal', 'booking-engine', 'support-bot', 'identity']


# ==================================================================================
# POSITIVE templates (each yields at least one span)
# ==================================================================================
POS, NEG = [], []


def pos(f):
    POS.append(f)
    return f


def neg(f):
    NEG.append(f)
    return f


def v(x, lab):
    return (x, lab)


@pos
def t_csv_customers():
    intro = ch(['can someone check why row 3 fails the import?', 'import job chokes on this csv, any idea why?',
                'here are the rows that bounced from the CRM sync', 'dedupe script flagged these, are they the same person?',
                'pasting the export so you can repro'])
    style = ri(0, 2)
    if style == 0:
        hdr = 'id,name,email,phone,dob'
    elif style == 1:
        hdr = 'customer_id,full_name,email,phone,date_of_birth,signup_date'
    else:
        hdr = 'ID;Name;E-mail;Telefon;Geburtsdatum'
    sep = ';' if style == 2 else ','
    rows = [T(hdr)]
    for i in range(ri(2, 5)):
        p = person()
        f = [str(ri(1000, 99999)), v(nm(p, ch(['n', 'n', 'l', 'u', 'lf'])), PE), v(p.email(), E), v(phone(), PH),
             v(dob(), DOB)]
        if style == 1:
            f.append(recent_date())
        rows.append(csvline(f, sep))
    return T(intro + '\n') + fence(join(rows))


@pos
def t_csv_employees_ssn():
    intro = ch(['payroll vendor rejected these, says ssn format is wrong?', 'HR sent this over for the benefits upload',
                'w2 reprint list from finance, who owns this', 'this is what the ADP export looks like'])
    rows = [T('employee_id,full_name,ssn,dob,hire_date,dept')]
    for _ in range(ri(2, 4)):
        p = person()
        rows.append(csvline([f'E{ri(10000, 99999)}', v(nm(p), PE), v(ssn(), SSN), v(dob('iso'), DOB),
                             recent_date(), ch(['ENG', 'OPS', 'SALES', 'FIN', 'SUPPORT'])]))
    return T(intro + '\n') + fence(join(rows))


@pos
def t_tsv_payroll():
    intro = ch(['direct deposit batch that failed validation:', 'tsv from the bank portal, the third row errors with R03',
                'ACH file rows (tab separated) for the rerun'])
    rows = [T('name\taccount_number\trouting_number\tamount\tpay_date')]
    for _ in range(ri(2, 4)):
        p = person()
        rows.append(csvline([v(nm(p), PE), v(bank_account(), BA), v(aba_routing(), BA),
                             f'{ri(800, 9000)}.{ri(0, 99):02d}', recent_date()], '\t'))
    return T(intro + '\n') + fence(join(rows))


@pos
def t_csv_kyc():
    intro = ch(['KYC batch, the DL numbers from FL keep failing regex', 'onboarding export for the audit sample',
                'why does the verifier reject row 2?'])
    rows = [T('name,dob,dl_state,dl_number,passport_no,passport_exp')]
    for _ in range(ri(2, 4)):
        p = person()
        stt, num = dl()
        rows.append(csvline([v(nm(p), PE), v(dob('us'), DOB), stt, v(num, DL), v(us_passport(), PP),
                             recent_date('us')]))
    return T(intro + '\n') + fence(join(rows))


@pos
def t_csv_shipping():
    intro = ch(['labels failed to print for these orders', 'courier API says address invalid for these two',
                'shipping export, can you check the postcodes'])
    rows = [T('order_id,recipient,address,phone,created_at')]
    for _ in range(ri(2, 3)):
        p = person()
        rows.append(csvline([order_id(), v(nm(p), PE), v(address(), LO), v(phone(), PH), ts()]))
    return T(intro + '\n') + fence(join(rows))


@pos
def t_json_customer():
    p = person()
    intro = ch(['GET /v1/customers returns this, why is phone null on the dashboard?', 'api response:',
                'here is the customer object from prod', 'customer lookup output'])
    body = P('{\n  "id": "⟨cid⟩",\n  "object": "customer",\n  "created": ⟨ep⟩,\n  "name": "⟨name⟩",\n'
             '  "email": "⟨email⟩",\n  "phone": "⟨phone⟩",\n  "currency": "usd",\n  "livemode": true,\n'
             '  "invoice_prefix": "⟨ip⟩"\n}',
             cid=stripe_id('cus'), ep=epoch(), name=v(nm(p), PE), email=v(p.email(), E), phone=v(e164(), PH),
             ip=rs(8, UPNUM))
    return T(intro + '\n') + fence(body, ch(['', 'json']))


@pos
def t_json_stripe_event():
    p = person()
    c = ch(['US', 'UK', 'CA', 'AU'])
    body = P('{\n  "id": "⟨evt⟩",\n  "type": "charge.failed",\n  "data": {\n    "object": {\n      "id": "⟨ch⟩",\n'
             '      "amount": ⟨amt⟩,\n      "billing_details": {\n        "name": "⟨name⟩",\n        "email": "⟨email⟩",\n'
             '        "phone": "⟨phone⟩",\n        "address": "⟨addr⟩"\n      },\n      "payment_method_details": {\n'
             '        "card": {"brand": "visa", "last4": "⟨l4⟩", "exp_month": ⟨em⟩, "exp_year": ⟨ey⟩, "checks": {"cvc_check": "fail"}}\n'
             '      },\n      "failure_code": "incorrect_cvc"\n    }\n  }\n}',
             evt=stripe_id('evt'), ch=stripe_id('ch'), amt=str(ri(500, 99999)), name=v(nm(p), PE),
             email=v(p.email(), E), phone=v(phone(c), PH), addr=v(address(c), LO), l4=d(4), em=str(ri(1, 12)),
             ey=str(ri(2025, 2031)))
    return T(ch(['webhook payload for the failed charge', 'why is this charge failing? event below',
                 'stripe sent us this, our handler 500s on it']) + '\n') + fence(body)


@pos
def t_json_profile():
    p = person()
    body = P('{"user": {"id": ⟨id⟩, "display_name": "⟨name⟩", "dob": "⟨dob⟩", "ssn_last4": "⟨l4⟩", '
             '"passport_number": "⟨pp⟩", "passport_expiry": "⟨pe⟩", "kyc_status": "pending", "updated_at": "⟨ts⟩"}}',
             id=str(ri(10000, 999999)), name=v(nm(p), PE), dob=v(dob('iso'), DOB), l4=d(4), pp=v(us_passport(), PP),
             pe=recent_date(), ts=ts())
    return T(ch(['profile endpoint is leaking the passport field, see:', 'this is in the response body, should it be?',
                 'found this in the debug panel']) + ' ') + T('`') + body + T('`')


@pos
def t_json_typeform():
    p = person()
    c = ch(['US', 'UK', 'IN', 'DE', 'AU'])
    body = P('{\n  "event_type": "form_response",\n  "form_response": {\n    "form_id": "⟨fid⟩",\n    "submitted_at": "⟨ts⟩",\n'
             '    "answers": [\n      {"type": "text", "text": "⟨name⟩"},\n      {"type": "email", "email": "⟨email⟩"},\n'
             '      {"type": "phone_number", "phone_number": "⟨phone⟩"},\n      {"type": "text", "text": "⟨addr⟩"}\n    ]\n  }\n}',
             fid=rs(8), ts=ts(), name=v(nm(p), PE), email=v(p.email(), E), phone=v(e164(), PH), addr=v(address(c), LO))
    return T(ch(['typeform webhook that broke the zap', 'raw webhook body from the signup form',
                 'our parser drops the address answer, payload:']) + '\n') + fence(body, 'json')


@pos
def t_yaml_config():
    pw = password()
    tok, env, prose = vendor()
    host = ch(INT_HOSTS)
    body = P('database:\n  host: ⟨host⟩\n  port: 5432\n  user: ⟨user⟩\n  password: "⟨pw⟩"\n  pool_size: 20\n'
             'integrations:\n  ⟨key⟩: ⟨tok⟩\n  region: ⟨reg⟩\n  timeout_ms: 3000',
             host=host, user=ch(['app', 'svc_billing', 'postgres', 'readonly']), pw=v(pw, SE),
             key=env.lower(), tok=v(tok, SE), reg=ch(REGIONS))
    return T(ch(['config.yaml on the staging box:', 'is this the right shape for the new loader?',
                 'app fails to boot with this config, what am I missing']) + '\n') + fence(body, ch(['', 'yaml']))


@pos
def t_env_file():
    lines = [T('NODE_ENV=production'), T(f'PORT={ch(["3000", "8080", "5000"])}'), T(f'LOG_LEVEL={ch(["info", "debug"])}')]
    pw = password()
    lines.append(P('DB_PASSWORD=⟨pw⟩', pw=v(pw, SE)) if coin(0.5) else
                 P('DATABASE_URL=postgres://⟨u⟩:⟨pw⟩@⟨h⟩:5432/⟨db⟩', u=ch(['app', 'api', 'django']),
                   pw=v(password(True), SE), h=ch(INT_HOSTS), db=ch(['app', 'prod', 'main'])))
    seen = set()
    for _ in range(ri(2, 4)):
        tok, env, _p = vendor()
        if env in seen:
            continue
        seen.add(env)
        q = ch(['', '', '"'])
        lines.append(P(f'{env}={q}⟨t⟩{q}', t=v(tok, SE)))
    lines.append(T(f'SENTRY_ENVIRONMENT=prod\nAWS_REGION={ch(REGIONS[:6])}'))
    R.shuffle(lines)
    return T(ch(['.env from the old droplet, which of these are still used?', 'prod env (pls dont share lol)',
                 'this is the .env that got committed, rotating now', 'env dump from the container:']) + '\n') + \
        fence(join(lines))


@pos
def t_compose_env():
    pw1, pw2, pw3 = password(), password(), password()
    body = P('services:\n  db:\n    image: mysql:8.0\n    environment:\n      MYSQL_ROOT_PASSWORD: ⟨p1⟩\n'
             '      MYSQL_DATABASE: shop\n  queue:\n    image: rabbitmq:3-management\n    environment:\n'
             '      RABBITMQ_DEFAULT_USER: admin\n      RABBITMQ_DEFAULT_PASS: "⟨p2⟩"\n    ports:\n      - "15672:15672"\n'
             '  cache:\n    image: redis:7\n    command: redis-server --requirepass ⟨p3⟩',
             p1=v(pw1, SE), p2=v(pw2, SE), p3=v(pw3, SE))
    return T(ch(['compose file for the demo env', 'why does rabbit refuse the login here?',
                 'docker-compose.yml from the repo, note the hardcoded passwords 😬']) + '\n') + fence(body, 'yaml')


@pos
def t_netrc():
    p = person()
    lines = [P('machine api.heroku.com\n  login ⟨em⟩\n  password ⟨t⟩', em=v(p.email(), E), t=v(heroku(), SE))]
    if coin(0.6):
        lines.append(P('machine github.com login ⟨u⟩ password ⟨t⟩', u=ch(['ci-bot', 'deploy', p.ag]), t=v(gh_pat(), SE)))
    return T(ch(['my ~/.netrc, is that why git keeps using the wrong account?', 'contents of .netrc on the runner:',
                 'found this in the build image']) + '\n') + fence(join(lines))


@pos
def t_docker_login():
    pw = ch([password(), dockerhub()])
    reg = ch(['registry.gitlab.com', 'ghcr.io', 'docker.io', f'{aws_account()}.dkr.ecr.us-east-1.amazonaws.com',
              'harbor.corp.lan'])
    body = P('docker login -u ⟨u⟩ -p ⟨pw⟩ ⟨reg⟩', u=ch(['deploy', 'ci-user', 'svc-pull']), pw=v(pw, SE), reg=reg)
    if coin(0.5):
        return T('the pipeline step is literally ') + T('`') + body + T('`') + T(' which prints a warning, can we fix')
    return T('login step from the runner log:\n') + fence(body + T('\nWARNING! Using --password via the CLI is insecure. '
                                                                   'Use --password-stdin.\nLogin Succeeded'))


@pos
def t_kubeconfig():
    server = ip_any() if coin(0.7) else None
    key = b64(pem_private('ec').encode() + b'\n')
    cert = b64(pem_cert().encode())
    srv = P('https://⟨ip⟩:6443', ip=v(server, IP)) if server and ':' not in server else \
        (P('https://[⟨ip⟩]:6443', ip=v(server, IP)) if server else T('https://k8s.prod.internal:6443'))
    body = P('apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: ⟨ca⟩\n    server: ⟨srv⟩\n  name: prod\n'
             'contexts:\n- context:\n    cluster: prod\n    user: admin\n  name: prod\ncurrent-context: prod\nkind: Config\n'
             'users:\n- name: admin\n  user:\n    client-certificate-data: ⟨cert⟩\n    client-key-data: ⟨key⟩',
             ca=cert[:120] + '...' if coin(0.3) else cert, srv=srv, cert=cert, key=v(key, SE))
    return T(ch(['kubeconfig the contractor sent, can you check it works?', 'this is the admin kubeconfig for prod fyi',
                 'kubectl says x509 unknown authority with this:']) + '\n') + fence(body, 'yaml')


@pos
def t_k8s_secret():
    u = ch(['app', 'svc', 'admin', 'orders'])
    pw = password()
    items = [('username', b64(u.encode()), False), ('password', b64(pw.encode()), True)]
    if coin(0.6):
        tok, env, _ = vendor()
        items.append((env.lower().replace('_', '-'), b64(tok.encode()), True))
    lines = []
    for k, val, secret in items:
        lines.append(P(f'  {k}: ⟨v⟩', v=v(val, SE)))
    body = P('apiVersion: v1\nkind: Secret\nmetadata:\n  name: ⟨n⟩\n  namespace: ⟨ns⟩\ntype: Opaque\ndata:\n',
             n=ch(APP_NAMES) + '-creds', ns=ch(['prod', 'default', 'payments', 'staging'])) + join(lines)
    return T(ch(['kubectl get secret -o yaml output, which key is wrong?', 'the secret manifest from the helm chart:',
                 'pod crashloops with auth failed, here is the secret']) + '\n') + fence(body)


@pos
def t_wireguard():
    priv = wg_key()
    peer_pub = wg_key()
    ep = public_ipv4()
    addr = f'10.{ri(0, 200)}.{ri(0, 255)}.{ri(2, 250)}'
    dns = ch(['1.1.1.1', '8.8.8.8', '9.9.9.9', f'10.{ri(0, 200)}.0.1'])
    body = P('[Interface]\nPrivateKey = ⟨pk⟩\nAddress = ⟨addr⟩/32\nDNS = ⟨dns⟩\n\n[Peer]\nPublicKey = ⟨pub⟩\n'
             'AllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = ⟨ep⟩:51820\nPersistentKeepalive = 25',
             pk=v(priv, SE), addr=v(addr, IP), dns=v(dns, IP), pub=peer_pub, ep=v(ep, IP))
    return T(ch(['vpn config for the new laptop, tunnel comes up but no traffic', 'wg0.conf:',
                 'can someone sanity check my wireguard conf']) + '\n') + fence(body, 'ini')


@pos
def t_azure_conn():
    acct = ch(['prodassets', 'invoicesstore', 'mlartifacts01', 'backupsweu', 'uploadsprod'])
    key = azure_key()
    body = P('DefaultEndpointsProtocol=https;AccountName=⟨a⟩;AccountKey=⟨k⟩;EndpointSuffix=core.windows.net',
             a=acct, k=v(key, SE))
    if coin(0.5):
        return T('connection string from the function app settings: ') + T('`') + body + T('`')
    return T(ch(['appsettings.json snippet', 'blob upload fails with 403 using this']) + '\n') + \
        fence(T('"AzureWebJobsStorage": "') + body + T('",\n"FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated"'), 'json')


@pos
def t_db_url():
    scheme = ch(['postgres', 'postgresql', 'mysql', 'mariadb', 'postgresql+psycopg2'])
    u = ch(['app', 'admin', 'reporting', 'etl_user', 'metabase'])
    pw = password(True)
    host_is_ip = coin(0.5)
    host = v(ipv4(), IP) if host_is_ip else ch(INT_HOSTS)
    body = P('⟨s⟩://⟨u⟩:⟨pw⟩@⟨h⟩:⟨port⟩/⟨db⟩', s=scheme, u=u, pw=v(pw, SE), h=host,
             port='5432' if 'post' in scheme else '3306', db=ch(['analytics', 'prod', 'shop', 'warehouse']))
    form = ri(0, 2)
    if form == 0:
        return T('metabase can\'t connect with ') + T('`') + body + T('`') + T(' any idea?')
    if form == 1:
        return T('DATABASE_URL in heroku is\n') + fence(body)
    return T('sqlalchemy url for the notebook, use read replica pls\n') + fence(T('engine = create_engine("') + body +
                                                                              T('", pool_pre_ping=True)'), 'python')


@pos
def t_curl_bearer():
    tok = ch([jwt(), gh_pat(), openai_key(), linear(), digitalocean(), stripe_sk(), hf(), vault(), slack_bot()])
    url = ch(['https://api.github.com/repos/acme/infra/actions/runs', 'https://api.openai.com/v1/models',
              'https://api.linear.app/graphql', 'https://api.digitalocean.com/v2/droplets',
              'https://api.stripe.com/v1/charges?limit=3', 'https://internal-api.corp/v2/users/me',
              'https://slack.com/api/chat.postMessage'])
    body = P('curl -s ⟨url⟩ \\\n  -H "Authorization: Bearer ⟨t⟩" \\\n  -H "Content-Type: application/json"',
             url=url, t=v(tok, SE))
    return T(ch(['this returns 401 for me, works for you?', 'repro:', 'hmm getting rate limited with this',
                 'try this curl']) + '\n') + fence(body, ch(['', 'bash', 'sh']))


@pos
def t_curl_basic():
    u = ch(['admin', 'api', 'svc-reporting', 'elastic', 'grafana'])
    pw = password()
    if coin(0.5):
        body = P('curl -u ⟨u⟩:⟨pw⟩ https://⟨h⟩/api/health', u=u, pw=v(pw, SE),
                 h=ch(['es.internal:9200', 'grafana.corp.lan', 'jenkins.build.internal', 'registry.local:5000']))
    else:
        cred = b64(f'{u}:{pw}'.encode())
        body = P('curl -H "Authorization: Basic ⟨c⟩" https://⟨h⟩/api/v1/export', c=v(cred, SE),
                 h=ch(['billing.internal', 'partner-api.example.net', 'legacy-erp.corp']))
    return T(ch(['cron job runs this every hour', 'curl from the runbook', 'this is how the exporter authenticates']) +
             ':\n') + fence(body)


@pos
def t_http_request_cookie():
    sess = ch([rs(32, HEX), b64u(rbytes(32)), 's%3A' + rs(32, B64URL) + '.' + rs(43, B64URL)])
    csrf = rs(32)
    xff = ip_any()
    body = P('POST /api/v2/checkout HTTP/1.1\nHost: shop.example.com\nUser-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X '
             '10_15_7) AppleWebKit/537.36 Chrome/124.0.6367.91 Safari/537.36\nCookie: sessionid=⟨s⟩; _ga=GA1.2.⟨ga⟩; '
             'theme=dark\nX-Forwarded-For: ⟨ip⟩\nContent-Type: application/json\n\n{"cart_id":"⟨cart⟩","coupon":null}',
             s=v(sess, SE), ga=f'{ri(10 ** 8, 10 ** 9)}.{epoch()}', ip=v(xff, IP), cart=uuid4())
    return T(ch(['raw request from the proxy capture', 'from burp, customer got a 403 here:',
                 'request that triggers the duplicate order bug']) + '\n') + fence(body, 'http')


@pos
def t_http_response_setcookie():
    tok = ch([jwt('HS256'), rs(48, B64URL)])
    body = P('HTTP/2 200\ndate: Tue, 14 May 2024 09:12:44 GMT\ncontent-type: application/json\nset-cookie: '
             '⟨cn⟩=⟨t⟩; Path=/; HttpOnly; Secure; SameSite=Lax\nx-request-id: ⟨rid⟩\n\n{"ok":true}',
             cn=ch(['session', 'auth_token', '__Host-sid', 'connect.sid']), t=v(tok, SE), rid=uuid4())
    return T(ch(['login response, cookie never gets set in safari', 'the auth endpoint returns:']) + '\n') + fence(body)


@pos
def t_log_lines_auth():
    lines = []
    for _ in range(ri(3, 5)):
        k = ri(0, 3)
        if k == 0:
            p = person()
            lines.append(P('⟨ts⟩ WARN  auth: login failed user=⟨em⟩ ip=⟨ip⟩ reason=bad_password attempt=⟨n⟩',
                           ts=ts(), em=v(p.email(), E), ip=v(ipv4(), IP), n=str(ri(1, 6))))
        elif k == 1:
            lines.append(P('⟨ts⟩ INFO  http: GET /healthz 200 1.2ms remote=127.0.0.1:⟨port⟩ trace_id=⟨tr⟩',
                           ts=ts(), port=str(ri(30000, 65000)), tr=trace_id()))
        elif k == 2:
            p = person()
            lines.append(P('⟨ts⟩ INFO  session: created for ⟨em⟩ from ⟨ip⟩ sid=⟨u⟩', ts=ts(), em=v(p.email(), E),
                           ip=v(ip_any(), IP), u=uuid4()))
        else:
            lines.append(P('⟨ts⟩ ERROR ratelimit: blocked ⟨ip⟩ (⟨n⟩ req/min) route=/api/login', ts=ts(),
                           ip=v(public_ipv4(), IP), n=str(ri(200, 3000))))
    if not any(lab for seg in lines for _, lab in seg):
        lines.append(P('⟨ts⟩ WARN  auth: locked account ⟨em⟩', ts=ts(), em=v(person().email(), E)))
    return T(ch(['seeing a lot of these since 9am', 'auth logs from the incident window', 'is this a credential stuffing run?']) +
             '\n') + fence(join(lines))


@pos
def t_java_stack():
    p = person()
    body = P('com.acme.users.UserNotFoundException: no account for ⟨em⟩\n\tat com.acme.users.UserService.load(UserService.java:'
             '⟨l1⟩)\n\tat com.acme.api.AccountController.get(AccountController.java:⟨l2⟩)\n\tat sun.reflect.NativeMethodAccessorImpl'
             '.invoke0(Native Method)\n\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)\n'
             'Caused by: org.postgresql.util.PSQLException: connection to ⟨ip⟩:5432 refused',
             em=v(p.email(), E), l1=str(ri(40, 400)), l2=str(ri(20, 300)), ip=v(private_ipv4(), IP))
    return T(ch(['prod stacktrace, started after the 3.4 deploy', 'getting this on every request to /account',
                 'anyone seen this one?']) + '\n') + fence(body)


@pos
def t_python_traceback_dsn():
    pw = password(True)
    h = ipv4()
    body = P('Traceback (most recent call last):\n  File "/app/etl/load.py", line ⟨ln⟩, in main\n    conn = psycopg2.connect(dsn)\n'
             '  File "/usr/local/lib/python3.11/site-packages/psycopg2/__init__.py", line 122, in connect\n'
             '    conn = _connect(dsn, connection_factory=connection_factory, **kwasync)\n'
             'psycopg2.OperationalError: connection to server at "⟨h⟩", port 5432 failed: FATAL:  password authentication '
             'failed for user "etl"\n\ndsn = "host=⟨h2⟩ port=5432 dbname=warehouse user=etl password=⟨pw⟩ sslmode=require"',
             ln=str(ri(20, 200)), h=v(h, IP), h2=v(h, IP), pw=v(pw, SE))
    return T(ch(['etl fails at 02:00 every night', 'traceback from airflow task log:', 'this started after the rotation']) +
             '\n') + fence(body)


@pos
def t_sql_insert():
    rows = []
    for _ in range(ri(2, 4)):
        p = person()
        rows.append(P("  (⟨id⟩, '⟨n⟩', '⟨dob⟩', '⟨ssn⟩', '⟨em⟩', now())", id=str(ri(100, 99999)),
                      n=v(nm(p, ch(['n', 'n', 'u'])).replace("'", "''"), PE), dob=v(dob('iso'), DOB),
                      ssn=v(ssn('dash'), SSN), em=v(p.email(), E)))
    body = T('INSERT INTO customers (id, full_name, date_of_birth, ssn, email, created_at) VALUES\n') + join(rows, ',\n') + T(';')
    return T(ch(['migration seed that got into prod 🙃', 'this insert fails with duplicate key, which row?',
                 'from the pg_dump, need to anonymise before sharing']) + '\n') + fence(body, 'sql')


@pos
def t_psql_table():
    rows = []
    w = 24
    for i in range(ri(2, 4)):
        p = person()
        n = nm(p, 'n')
        em = p.email()
        ph_ = phone()
        rows.append(P(' ⟨i⟩ | ⟨n⟩⟨pad⟩ | ⟨e⟩ | ⟨p⟩', i=str(ri(100, 999)), n=v(n, PE), pad=' ' * max(0, w - len(n)),
                      e=v(em, E), p=v(ph_, PH)))
    body = T(' id  | name                     | email | phone\n-----+--------------------------+-------+------\n') + \
        join(rows) + T(f'\n({len(rows)} rows)')
    return T(ch(['select * from contacts where updated_at > now() - interval \'1 day\';',
                 'these three have no account_id, how?', 'query output:']) + '\n') + fence(body)


@pos
def t_chat_transcript():
    a, b = person(), person()
    na, nb = nm(a, 'n'), nm(b, 'n')
    t1 = hhmm()
    k = ri(0, 2)
    lines = [P('[⟨t⟩] ⟨a⟩: hi, I can\'t log in since yesterday', t=t1, a=v(na, PE)),
             P('[⟨t⟩] ⟨b⟩: sorry about that! can you confirm the phone number on the account?', t=t1, b=v(nb, PE))]
    if k == 0:
        lines.append(P('[⟨t⟩] ⟨a⟩: it\'s ⟨ph⟩', t=t1, a=v(na, PE), ph=v(phone(), PH)))
    elif k == 1:
        lines.append(P('[⟨t⟩] ⟨a⟩: ⟨ph⟩, and my email is ⟨em⟩', t=t1, a=v(na, PE), ph=v(phone(), PH), em=v(a.email(), E)))
    else:
        lines.append(P('[⟨t⟩] ⟨a⟩: ⟨ph⟩. also I moved, new address is ⟨addr⟩', t=t1, a=v(na, PE), ph=v(phone(), PH),
                       addr=v(address(), LO)))
    lines.append(P('[⟨t⟩] ⟨b⟩: thanks, resetting now', t=t1, b=v(nb, PE)))
    return T(ch(['transcript from the chat widget, escalating to tier 2:', 'pasting the convo for context',
                 'customer says we never replied, but:']) + '\n') + fence(join(lines))


@pos
def t_form_applicant():
    p = person()
    stt, num = dl()
    lines = [P('Applicant: ⟨n⟩', n=v(nm(p), PE)), P('Date of birth: ⟨d⟩', d=v(dob(), DOB)),
             P('SSN: ⟨s⟩', s=v(ssn(), SSN)), P('Driver\'s license: ⟨n⟩ (⟨st⟩)', n=v(num, DL), st=stt),
             P('Phone: ⟨p⟩', p=v(phone('US'), PH)), P('Email: ⟨e⟩', e=v(p.email(), E)),
             T(f'Submitted: {ts_plain()}'), T(f'Loan amount: ${ri(5, 80)},000')]
    return T(ch(['form submission that failed the credit pull:', 'loan app stuck in review, details below',
                 'can you check why this application didn\'t sync to the LOS?']) + '\n') + fence(join(lines))


@pos
def t_form_beneficiary():
    p = person()
    c = ch(['DE', 'GB', 'FR', 'ES', 'IT', 'NL', 'PL', 'TR', 'GR', 'IE', 'NO', 'CH', 'PT', 'SA', 'AE'])
    bic = ch(BICS)
    lines = [P('Beneficiary: ⟨n⟩', n=v(nm(p), PE)), P('IBAN: ⟨i⟩', i=v(iban(c), IB)), T(f'BIC: {bic}'),
             T(f'Amount: EUR {ri(100, 20000)}.00'), T(f'Reference: {ticket()}')]
    if coin(0.5):
        lines.insert(1, P('Address: ⟨a⟩', a=v(address(ch(['UK', 'DE'])), LO)))
    return T(ch(['payout rejected by the bank, can finance double check?', 'wire details from the vendor form:',
                 'refund to this account pls']) + '\n') + fence(join(lines))


@pos
def t_form_patient():
    p = person()
    lines = [P('Patient: ⟨n⟩', n=v(nm(p, ch(['n', 'u', 'lf'])), PE)), P('DOB: ⟨d⟩', d=v(dob('us'), DOB)),
             T(f'MRN: {ri(1000000, 9999999)}'), P('Phone: ⟨p⟩', p=v(phone(), PH)),
             P('Address: ⟨a⟩', a=v(address(), LO)), T(f'Appointment: {recent_date("us")} {hhmm()}'),
             T('Reason: follow-up')]
    return T(ch(['intake form that errored on the EHR side', 'the fax OCR produced this, fields look shifted?',
                 'patient record that failed HL7 export:']) + '\n') + fence(join(lines))


@pos
def t_form_cardholder():
    p = person()
    num = card_number()
    lines = [P('Cardholder: ⟨n⟩', n=v(nm(p, ch(['n', 'u'])), PE)), P('Card number: ⟨c⟩', c=v(fmt_card(num), CC)),
             T(f'Exp: {ri(1, 12):02d}/{ri(25, 31)}'), T(f'CVV: {d(3)}'), P('Billing ZIP: ⟨z⟩', z=d(5))]
    return T(ch(['someone pasted this into the support form 😬 can we purge it', 'phone order from this morning:',
                 'manual charge request from sales']) + '\n') + fence(join(lines))


@pos
def t_form_traveller():
    p = person()
    lines = [P('Traveller: ⟨n⟩', n=v(nm(p, ch(['n', 'u'])), PE)), P('DOB: ⟨d⟩', d=v(dob(), DOB)),
             P('Passport no: ⟨pp⟩', pp=v(us_passport(), PP)), T(f'Passport expiry: {recent_date("dmy_long")}'),
             T('Nationality: USA'), P('Mobile: ⟨ph⟩', ph=v(phone(), PH)), T(f'PNR: {rs(6, UPNUM)}')]
    return T(ch(['airline API rejected the APIS data for this pax', 'booking for the offsite, visa letter needs this',
                 'the GDS says passport invalid?']) + '\n') + fence(join(lines))


@pos
def t_form_emergency():
    p, q = person(), person()
    lines = [P('Employee: ⟨n⟩', n=v(nm(p), PE)), T(f'Start date: {recent_date("long")}'),
             P('Emergency contact: ⟨n⟩', n=v(nm(q), PE)), T(f'Relationship: {ch(["spouse", "mother", "brother", "partner", "friend"])}'),
             P('Phone: ⟨ph⟩', ph=v(phone(), PH))]
    return T(ch(['onboarding form, workday didn\'t pick up the contact', 'new hire details:']) + '\n') + fence(join(lines))


@pos
def t_address_block_us():
    p = person()
    blk = address('US', multiline=True)
    return T(ch(['pls send the replacement device to:', 'shipping label keeps failing for this one:',
                 'return address on the RMA:']) + '\n') + fence(join([v(nm(p, ch(['n', 'u'])), PE), v(blk, LO)]))


@pos
def t_address_block_intl():
    p = person()
    c = ch(['UK', 'CA', 'AU', 'IN', 'DE'])
    blk = address(c, multiline=True)
    return T(ch(['courier needs the full address, here:', 'welcome kit goes to', 'updating the HRIS with:']) + '\n') + \
        fence(join([v(nm(p), PE), v(blk, LO), P('Tel: ⟨ph⟩', ph=v(phone({'UK': 'UK', 'CA': 'CA', 'AU': 'AU', 'IN': 'IN',
                                                                           'DE': 'DE'}[c]), PH))]))


@pos
def t_pem_rsa():
    key = pem_private(ch(['rsa', 'pkcs8']))
    return T(ch(['here\'s the deploy key for the staging box, delete after copying', 'this is the key the old jenkins used:',
                 'can you check if this key matches the cert on the LB?']) + '\n') + fence(T('') + [(key, SE)])


@pos
def t_pem_openssh():
    key = pem_private('openssh')
    pre = ch(['cat ~/.ssh/id_ed25519\n', '$ cat deploy_key\n', ''])
    return T(ch(['ssh fails with "invalid format", this is the file:', 'key for the sftp partner drop',
                 'is this key passphrase protected? it doesn\'t prompt']) + '\n') + fence(T(pre) + [(key, SE)])


@pos
def t_pem_ec_inline():
    key = pem_private('ec')
    cert = pem_cert()
    return T('tls secret for the ingress, cert first then key\n') + fence(join([T(cert), v(key, SE)]))


@pos
def t_aws_credentials_file():
    kid, sec = aws_key_id(), aws_secret()
    lines = [P('[default]\naws_access_key_id = ⟨k⟩\naws_secret_access_key = ⟨s⟩\nregion = ⟨r⟩', k=v(kid, SE), s=v(sec, SE),
               r=ch(REGIONS[:6]))]
    if coin(0.5):
        lines.append(P('\n[prod-admin]\naws_access_key_id = ⟨k⟩\naws_secret_access_key = ⟨s⟩\naws_session_token = ⟨t⟩',
                       k=v(aws_key_id(True), SE), s=v(aws_secret(), SE), t=v(aws_session(), SE)))
    return T(ch(['~/.aws/credentials on the build agent:', 'the intern\'s credentials file, we need to rotate',
                 'why does boto pick the wrong profile?']) + '\n') + fence(join(lines))


@pos
def t_aws_export():
    kid, sec = aws_key_id(), aws_secret()
    body = P('export AWS_ACCESS_KEY_ID=⟨k⟩\nexport AWS_SECRET_ACCESS_KEY=⟨s⟩\nexport AWS_DEFAULT_REGION=⟨r⟩\n'
             'aws sts get-caller-identity\n{\n    "UserId": "⟨uid⟩",\n    "Account": "⟨acct⟩",\n'
             '    "Arn": "arn:aws:iam::⟨acct⟩:user/ci-deployer"\n}',
             k=v(kid, SE), s=v(sec, SE), r=ch(REGIONS[:6]), uid='AIDA' + rs(17, UPNUM), acct=aws_account())
    return T(ch(['works locally:', 'terminal output, note the account id is right', 'ok this is what I ran']) + '\n') + fence(body)


@pos
def t_git_remote_token():
    tok = ch([gh_pat(), gh_fine(), glpat()])
    host = 'gitlab.com' if tok.startswith('glpat') else 'github.com'
    user = 'oauth2' if tok.startswith('glpat') else ch(['x-access-token', 'ci-bot'])
    body = P('$ git remote -v\norigin\thttps://⟨u⟩:⟨t⟩@⟨h⟩/acme/payments-api.git (fetch)\n'
             'origin\thttps://⟨u⟩:⟨t⟩@⟨h⟩/acme/payments-api.git (push)', u=user, t=v(tok, SE), h=host)
    return T(ch(['pushes go to the wrong org?', 'this is on the shared runner, is that token still valid',
                 'remote config on the old VM']) + '\n') + fence(body)


@pos
def t_npmrc():
    t1 = npm_tok()
    body = P('registry=https://registry.npmjs.org/\n@acme:registry=https://npm.pkg.github.com\n'
             '//registry.npmjs.org/:_authToken=⟨t1⟩\n//npm.pkg.github.com/:_authToken=⟨t2⟩\nalways-auth=true',
             t1=v(t1, SE), t2=v(gh_pat(), SE))
    return T(ch(['.npmrc from the docker build context (yes I know)', 'npm publish 403s with this npmrc:']) + '\n') + fence(body)


@pos
def t_pypirc():
    body = P('[distutils]\nindex-servers =\n    pypi\n    internal\n\n[pypi]\nusername = __token__\npassword = ⟨t⟩\n\n'
             '[internal]\nrepository = https://pypi.corp.lan/simple\nusername = build\npassword = ⟨p⟩',
             t=v(pypi(), SE), p=v(password(), SE))
    return T('~/.pypirc on the release box:\n') + fence(body, 'ini')


@pos
def t_slack_manifest_env():
    sign = rs(32, HEX)
    body = P('SLACK_BOT_TOKEN=⟨b⟩\nSLACK_APP_TOKEN=⟨a⟩\nSLACK_SIGNING_SECRET=⟨s⟩\nSLACK_CLIENT_ID=⟨cid⟩\n'
             'SLACK_TEAM_ID=⟨tid⟩', b=v(slack_bot(), SE), a=v(slack_app(), SE), s=v(sign, SE),
             cid=f'{ri(10 ** 9, 10 ** 10)}.{ri(10 ** 11, 10 ** 12)}', tid=slack_tid())
    return T(ch(['bolt app won\'t start in socket mode:', 'env for the standup bot', 'the bot creds from the wiki page:']) +
             '\n') + fence(body)


@pos
def t_slack_webhook_curl():
    url = slack_webhook()
    body = P('curl -X POST -H \'Content-type: application/json\' --data \'{"text":"deploy finished ✅"}\' ⟨u⟩', u=v(url, SE))
    if coin(0.4):
        return T('the alert webhook is ') + [v(url, SE)] + T(' if you want to test')
    return T(ch(['notification step in the pipeline:', 'why does this post to the wrong channel?']) + '\n') + fence(body)


@pos
def t_twilio_config():
    sid = twilio_sid()
    tok = hex32()
    key = twilio_sk()
    body = P('TWILIO_ACCOUNT_SID=⟨sid⟩\nTWILIO_AUTH_TOKEN=⟨tok⟩\nTWILIO_API_KEY=⟨key⟩\nTWILIO_API_SECRET=⟨sec⟩\n'
             'TWILIO_FROM=⟨ph⟩', sid=sid, tok=v(tok, SE), key=v(key, SE), sec=v(rs(32), SE), ph=v(e164(), PH))
    return T(ch(['sms sending broke after the account move, config:', 'twilio settings from the old server']) + '\n') + fence(body)


@pos
def t_django_settings_email():
    k = ri(0, 1)
    if k == 0:
        body = P("EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend'\nEMAIL_HOST = 'smtp.sendgrid.net'\n"
                 "EMAIL_PORT = 587\nEMAIL_HOST_USER = 'apikey'\nEMAIL_HOST_PASSWORD = '⟨t⟩'\nDEFAULT_FROM_EMAIL = '⟨fr⟩'",
                 t=v(sendgrid(), SE), fr=v(ch(['noreply@', 'support@', 'billing@']) + ch(WORK_DOMAINS), E))
    else:
        body = P("MAILGUN_DOMAIN = 'mg.⟨dom⟩'\nMAILGUN_API_KEY = '⟨t⟩'\nSECRET_KEY = '⟨sk⟩'\nDEBUG = False\n"
                 "ALLOWED_HOSTS = ['127.0.0.1', 'localhost', '.⟨dom⟩']", dom=ch(WORK_DOMAINS), t=v(mailgun(), SE),
                 sk=v('django-insecure-' + rs(50, string.ascii_lowercase + string.digits + '!@#%^*(-_=+)'), SE))
    return T(ch(['settings.py in prod:', 'emails stopped going out, settings below', 'found in settings/prod.py']) + '\n') + \
        fence(body, 'python')


@pos
def t_tfvars():
    body = P('region          = "⟨r⟩"\ninstance_type   = "t3.large"\ndb_master_password = "⟨p⟩"\n'
             'datadog_api_key = "⟨dd⟩"\ncloudflare_api_token = "⟨cf⟩"\nallowed_cidrs   = ["⟨ip⟩/32"]',
             r=ch(REGIONS[:6]), p=v(password(), SE), dd=v(hex32(), SE), cf=v(cloudflare(), SE), ip=v(public_ipv4(), IP))
    return T(ch(['prod.tfvars (this should be in vault not git)', 'terraform plan fails, here are my vars']) + '\n') + \
        fence(body, 'hcl')


@pos
def t_gitlab_ci():
    tok = glpat()
    body = P('variables:\n  DOCKER_DRIVER: overlay2\n  GITLAB_TOKEN: "⟨t⟩"\n  DEPLOY_KEY: $DEPLOY_KEY\n\n'
             'release:\n  stage: deploy\n  script:\n    - curl --header "PRIVATE-TOKEN: ⟨t⟩" "$CI_API_V4_URL/projects/$CI_PROJECT_ID/releases"',
             t=v(tok, SE))
    return T('.gitlab-ci.yml, release job 401s\n') + fence(body, 'yaml')


@pos
def t_helm_values():
    body = P('image:\n  repository: ghcr.io/acme/⟨app⟩\n  tag: "⟨ver⟩"\npostgresql:\n  auth:\n    username: app\n'
             '    password: ⟨p⟩\n    postgresPassword: ⟨p2⟩\nredis:\n  auth:\n    existingSecret: redis-auth\n'
             'resources:\n  limits:\n    memory: 512Mi', app=ch(APP_NAMES), ver=version(), p=v(password(), SE),
             p2=v(password(), SE))
    return T(ch(['values-prod.yaml', 'helm upgrade keeps resetting the db pw, values:']) + '\n') + fence(body, 'yaml')


@pos
def t_spring_props():
    h = ipv4()
    body = P('spring.datasource.url=jdbc:postgresql://⟨h⟩:5432/orders\nspring.datasource.username=orders_app\n'
             'spring.datasource.password=⟨p⟩\nspring.jpa.hibernate.ddl-auto=validate\nserver.port=8080\n'
             'management.endpoints.web.exposure.include=health,info', h=v(h, IP), p=v(password(), SE))
    return T(ch(['application-prod.properties', 'hikari pool times out, props:']) + '\n') + fence(body, 'properties')


@pos
def t_jdbc_url():
    pw = password(True)
    h = ch([None, ipv4()])
    hs = v(h, IP) if h else ch(INT_HOSTS)
    body = P('jdbc:mysql://⟨h⟩:3306/crm?user=crm_rw&password=⟨p⟩&useSSL=true&serverTimezone=UTC', h=hs, p=v(pw, SE))
    return T(ch(['dbeaver connection url that works: ', 'the legacy app uses ', 'jdbc url from the old wiki: '])) + T('`') + body + T('`')


@pos
def t_mongo_uri():
    pw = password(True)
    body = P('mongodb+srv://⟨u⟩:⟨p⟩@cluster0.⟨c⟩.mongodb.net/⟨db⟩?retryWrites=true&w=majority', u=ch(['admin', 'appUser', 'analytics']),
             p=v(pw, SE), c=rs(5, LOWNUM), db=ch(['prod', 'events', 'users']))
    return T(ch(['atlas connection string for the notebook: ', 'MONGO_URI is ', 'compass connects with '])) + T('`') + body + T('`')


@pos
def t_redis_url():
    ip = private_ipv4()
    pw = password(True)
    body = P('REDIS_URL=redis://:⟨p⟩@⟨ip⟩:6379/0\nCELERY_BROKER_URL=redis://:⟨p⟩@⟨ip⟩:6379/1', p=v(pw, SE), ip=v(ip, IP))
    return T('celery workers can\'t reach the broker\n') + fence(body)


@pos
def t_amqp():
    pw = password(True)
    body = P('amqp://⟨u⟩:⟨p⟩@⟨h⟩:5672/⟨vh⟩', u=ch(['orders', 'guest2', 'svc-events']), p=v(pw, SE),
             h=ch(['rabbit.internal', 'mq-01.corp.lan', 'rabbitmq']), vh=ch(['prod', '%2F', 'events']))
    return T('broker url in the consumer config is ') + T('`') + body + T('`') + T(', connection resets every 60s')


@pos
def t_jwt_log():
    p = person()
    tok = jwt(claims={'email': p.email()} if coin(0.3) else None)
    body = P('⟨ts⟩ DEBUG middleware.auth incoming Authorization: Bearer ⟨t⟩\n⟨ts2⟩ WARN  middleware.auth token expired '
             'sub=⟨sub⟩ trace=⟨tr⟩', ts=ts(), t=v(tok, SE), ts2=ts(), sub=uuid4(), tr=trace_id())
    return T(ch(['debug logging is on in prod and dumping tokens:', 'why does this token fail validation?']) + '\n') + fence(body)


@pos
def t_vault_login():
    tok = vault()
    acc = rs(24)
    body = P('$ vault login -method=userpass username=ops\nSuccess! You are now authenticated.\n\nKey                    Value\n'
             '---                    -----\ntoken                  ⟨t⟩\ntoken_duration         768h\ntoken_renewable        true\n'
             'token_policies         ["default" "ops"]', t=v(tok, SE))
    return T(ch(['vault output, is 768h normal?', 'pasting my vault login so you can see the policies']) + '\n') + fence(body)


@pos
def t_openai_python():
    k = ri(0, 1)
    if k == 0:
        body = P('from openai import OpenAI\n\nclient = OpenAI(api_key="⟨t⟩")\nresp = client.chat.completions.create(\n'
                 '    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])', t=v(openai_key(), SE))
    else:
        body = P('import anthropic\n\nclient = anthropic.Anthropic(\n    api_key="⟨t⟩",\n)\nmsg = client.messages.create(model='
                 '"claude-3-5-sonnet-latest", max_tokens=256, messages=[{"role": "user", "content": "ping"}])',
                 t=v(anthropic_key(), SE))
    return T(ch(['getting 429s from this notebook:', 'minimal repro:', 'is the client setup wrong?']) + '\n') + \
        fence(body, 'python')


@pos
def t_google_maps_html():
    key = google_key()
    body = P('<script src="https://maps.googleapis.com/maps/api/js?key=⟨k⟩&callback=initMap&libraries=places" async defer>'
             '</script>', k=v(key, SE))
    return T(ch(['map doesn\'t render on the contact page, snippet:', 'this is in the landing page template']) + '\n') + fence(body, 'html')


@pos
def t_datadog_yaml():
    body = P('## datadog.yaml\napi_key: ⟨k⟩\napp_key: ⟨a⟩\nsite: datadoghq.eu\nhostname: ⟨h⟩\ntags:\n  - env:prod\n'
             '  - team:platform\nlogs_enabled: true', k=v(hex32(), SE), a=v(rs(40, HEX), SE), h=ch(HOSTS))
    return T('agent not reporting from the new nodes\n') + fence(body, 'yaml')


@pos
def t_newrelic():
    body = P("common: &default_settings\n  license_key: '⟨l⟩'\n  app_name: ⟨app⟩\n  distributed_tracing:\n    enabled: true\n"
             "# user key for the deploy marker script\n# NEW_RELIC_API_KEY=⟨k⟩", l=v(rs(36, HEX) + 'NRAL', SE),
             app=ch(APP_NAMES), k=v(newrelic(), SE))
    return T('newrelic.yml from the worker image:\n') + fence(body, 'yaml')


@pos
def t_postman_env():
    body = P('{\n  "id": "⟨id⟩",\n  "name": "prod",\n  "values": [\n    {"key": "baseUrl", "value": "https://api.⟨dom⟩", "enabled": true},\n'
             '    {"key": "apiKey", "value": "⟨k⟩", "enabled": true},\n    {"key": "adminPassword", "value": "⟨p⟩", "enabled": true}\n'
             '  ],\n  "_postman_exported_using": "Postman/10.24.7"\n}', id=uuid4(), dom=ch(WORK_DOMAINS),
             k=v(ch([postman(), rs(32, HEX)]), SE), p=v(password(), SE))
    return T(ch(['exported postman env, import this to test', 'prod.postman_environment.json']) + '\n') + fence(body, 'json')


@pos
def t_shell_history():
    lines = []
    lines.append(T('  501  cd ~/src/infra'))
    g, env, _ = vendor()
    lines.append(P(f'  502  export {env}=⟨t⟩', t=v(g, SE)))
    lines.append(P('  503  doctl auth init -t ⟨t⟩', t=v(digitalocean(), SE)) if coin(0.5) else
                 P('  503  curl -H "Authorization: ⟨t⟩" https://api.linear.app/graphql -d @q.json', t=v(linear(), SE)))
    lines.append(T('  504  terraform plan -out plan.tfout'))
    lines.append(T('  505  git status'))
    return T(ch(['history from the shared bastion 😬', 'what I ran before it broke:']) + '\n') + fence(join(lines))


@pos
def t_support_transcript_card():
    c = person()
    agent_first = ch(LONE_GIVEN).capitalize()
    num = card_number()
    tt = hhmm_seq(4)
    lines = [P('[⟨t⟩] ⟨c⟩: hi my payment keeps failing', t=tt[0], c=v(nm(c, 'n'), PE)),
             T(f'[{tt[1]}] {agent_first} (Support): sorry to hear! could you share the last 4 of the card?'),
             P('[⟨t⟩] ⟨c⟩: the full number is ⟨n⟩ exp ⟨e⟩', t=tt[2], c=v(nm(c, 'n'), PE), n=v(fmt_card(num), CC),
               e=f'{ri(1, 12):02d}/{ri(25, 31)}'),
             T(f'[{tt[3]}] {agent_first} (Support): please don\'t send full card numbers here, I\'ll redact that')]
    return T(ch(['chat needs redaction in zendesk too:', 'customer pasted their card in chat, transcript:']) + '\n') + fence(join(lines))


@pos
def t_zendesk_json():
    p = person()
    body = P('{\n  "ticket": {\n    "id": ⟨id⟩,\n    "subject": "Refund not received",\n    "requester": {"name": "⟨n⟩", '
             '"email": "⟨e⟩", "phone": "⟨ph⟩"},\n    "tags": ["refund", "priority"],\n    "created_at": "⟨ts⟩"\n  }\n}',
             id=str(ri(100000, 999999)), n=v(nm(p), PE), e=v(p.email(), E), ph=v(phone(), PH), ts=ts())
    return T(ch(['ticket payload the macro chokes on:', 'zendesk api output for the escalation']) + '\n') + fence(body, 'json')


@pos
def t_hr_yaml():
    p = person()
    body = P('employee:\n  name: ⟨n⟩\n  ssn: "⟨s⟩"\n  dob: ⟨d⟩\n  start_date: ⟨sd⟩\n  home_address: "⟨a⟩"\n'
             '  direct_deposit:\n    routing: "⟨r⟩"\n    account: "⟨ac⟩"\n    type: checking',
             n=v(nm(p), PE), s=v(ssn(), SSN), d=v(dob('iso'), DOB), sd=recent_date(), a=v(address('US'), LO),
             r=v(aba_routing(), BA), ac=v(bank_account(), BA))
    return T(ch(['fixture from the HRIS integration test... is this real data??', 'payload the gusto sync sends:']) + '\n') + \
        fence(body, 'yaml')


@pos
def t_direct_deposit():
    p = person()
    lines = [P('Account holder: ⟨n⟩', n=v(nm(p), PE)), T(f'Bank: {ch(["Chase", "Wells Fargo", "Bank of America", "Ally", "US Bank", "PNC"])}'),
             P('Routing #: ⟨r⟩', r=v(aba_routing(), BA)), P('Account #: ⟨a⟩', a=v(bank_account(), BA)),
             T('Account type: Checking'), T(f'Effective: {recent_date("us")}')]
    return T(ch(['direct deposit change request (verify by phone before applying!)', 'new DD form from the contractor:']) +
             '\n') + fence(join(lines))


@pos
def t_relocation_chat():
    p = person()
    city = ch(['Lisbon', 'Porto', 'Nairobi', 'Kraków', 'Da Nang', 'Busan', 'Guadalajara', 'Thessaloniki', 'Bergen',
               'Cork', 'Ibadan', 'Izmir', 'Pune', 'Calgary', 'Adelaide', 'Leipzig'])
    tt = hhmm_seq(3)
    lines = [P('[⟨t⟩] ⟨n⟩: heads up, I\'m relocating to ⟨c⟩ next month so my payroll country changes', t=tt[0],
               n=v(nm(p, 'n'), PE), c=v(city, LO)),
             T(f'[{tt[1]}] hr-bot: thanks! please update your address and phone in Workday'),
             P('[⟨t⟩] ⟨n⟩: done, new mobile is ⟨ph⟩ (address once I have the lease)', t=tt[2], n=v(nm(p, 'n'), PE),
               ph=v(phone(), PH))]
    return T('from the #people-ops thread:\n') + fence(join(lines))


@pos
def t_nginx_log():
    lines = []
    for _ in range(ri(3, 5)):
        p = person()
        ip = ip_any() if coin(0.85) else '127.0.0.1'
        ipseg = v(ip, IP) if ip != '127.0.0.1' else ip
        if coin(0.5):
            path = P('/api/v1/users/lookup?email=⟨e⟩&src=web', e=v(p.email().replace('@', '%40'), E))
        else:
            path = T(ch(['/static/app.9f8c1.js', '/healthz', '/api/v1/cart', '/login']))
        lines.append(P('⟨ip⟩ - - [14/May/2024:09:1⟨m⟩:⟨s⟩ +0000] "GET ⟨path⟩ HTTP/1.1" ⟨st⟩ ⟨sz⟩ "-" "Mozilla/5.0"',
                       ip=ipseg, m=str(ri(0, 9)), s=f'{ri(0, 59):02d}', path=path, st=ch(['200', '404', '502', '429']),
                       sz=str(ri(100, 90000))))
    return T(ch(['nginx access log during the spike', 'someone is enumerating emails on the lookup endpoint:']) + '\n') + \
        fence(join(lines))


@pos
def t_elb_ipv6_log():
    lines = []
    for _ in range(ri(2, 4)):
        c6 = ipv6()
        tgt = private_ipv4()
        lines.append(P('h2 ⟨ts⟩ app/prod-alb/⟨id⟩ [⟨c⟩]:⟨cp⟩ ⟨t⟩:8080 0.001 0.045 0.000 200 200 512 1337 "GET https://api.example.com:443/v1/me HTTP/2.0"',
                       ts=ts(), id=rs(16, HEX), c=v(c6, IP), cp=str(ri(1024, 65000)), t=v(tgt, IP)))
    return T('ALB logs, ipv6 clients only seem affected\n') + fence(join(lines))


@pos
def t_iptables():
    a, b = public_ipv4(), public_ipv4()
    body = P('-A INPUT -s ⟨a⟩/32 -p tcp --dport 22 -j ACCEPT\n-A INPUT -s ⟨b⟩/32 -p tcp --dport 5432 -j ACCEPT\n'
             '-A INPUT -i lo -j ACCEPT\n-A INPUT -s 0.0.0.0/0 -p tcp --dport 22 -j DROP\n# netmask 255.255.255.0 for the office range',
             a=v(a, IP), b=v(b, IP))
    return T(ch(['current rules on the db host, can we drop the second one?', 'iptables-save output:']) + '\n') + fence(body)


@pos
def t_etc_hosts():
    a, b = private_ipv4(), private_ipv4()
    body = P('127.0.0.1   localhost\n::1         localhost ip6-localhost\n⟨a⟩  db-primary\n⟨b⟩  redis-cache\n# 0.0.0.0 ads.example',
             a=v(a, IP), b=v(b, IP))
    return T('/etc/hosts on the worker, this is why DNS changes don\'t apply\n') + fence(body)


@pos
def t_ansible_inventory():
    lines = [T('[db]')]
    for i in range(ri(2, 3)):
        lines.append(P(f'db{i + 1} ansible_host=⟨ip⟩ ansible_user=ubuntu', ip=v(private_ipv4(), IP)))
    lines.append(T('\n[db:vars]'))
    lines.append(P('ansible_become_password=⟨p⟩', p=v(password(), SE)))
    return T(ch(['inventory for the db play', 'hosts.ini, the vars section is temporary I swear']) + '\n') + fence(join(lines), 'ini')


@pos
def t_ssh_config():
    ip = ch([public_ipv4(), private_ipv4()])
    body = P('Host bastion\n  HostName ⟨ip⟩\n  User ubuntu\n  IdentityFile ~/.ssh/bastion.pem\n\nHost db-*\n  ProxyJump bastion\n'
             '  User ec2-user', ip=v(ip, IP))
    return T('my ssh config, then just `ssh ubuntu@bastion`\n') + fence(body)


@pos
def t_kafka_connect():
    ips = [private_ipv4() for _ in range(3)]
    segs = join([P('⟨ip⟩:9092', ip=v(x, IP)) for x in ips], ',')
    body = T('bootstrap.servers=') + segs + P('\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule '
                                             'required username="⟨u⟩" password="⟨p⟩";\nsecurity.protocol=SASL_SSL',
                                             u=ch(['svc-orders', 'etl-consumer', 'analytics']), p=v(rs(64, ALNUM + '+/'), SE))
    return T('consumer.properties for the confluent cluster:\n') + fence(body, 'properties')


@pos
def t_sentry_event():
    p = person()
    body = P('{\n  "event_id": "⟨eid⟩",\n  "level": "error",\n  "release": "web@⟨ver⟩",\n  "user": {\n    "id": "⟨uid⟩",\n'
             '    "email": "⟨e⟩",\n    "username": "⟨un⟩",\n    "ip_address": "⟨ip⟩"\n  },\n'
             '  "exception": {"values": [{"type": "TypeError", "value": "Cannot read properties of undefined (reading \'total\')"}]}\n}',
             eid=rs(32, HEX), ver=version(), uid=str(ri(1000, 999999)), e=v(p.email(), E), un=p.ag + str(ri(1, 99)),
             ip=v(ip_any(), IP))
    return T(ch(['sentry event json, happens only for this user', 'from the sentry issue, any idea?']) + '\n') + fence(body, 'json')


@pos
def t_okta_log():
    p = person()
    body = P('{"eventType": "user.session.start", "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"}, '
             '"actor": {"id": "00u⟨aid⟩", "type": "User", "alternateId": "⟨e⟩", "displayName": "⟨n⟩"}, '
             '"client": {"ipAddress": "⟨ip⟩", "geographicalContext": {"country": "⟨cty⟩"}}, "published": "⟨ts⟩"}',
             aid=rs(17), e=v(p.email(ch(WORK_DOMAINS)), E), n=v(nm(p, 'n'), PE), ip=v(public_ipv4(), IP),
             cty=ch(['Nigeria', 'Vietnam', 'Poland', 'Brazil', 'United States', 'Germany']), ts=ts())
    return T(ch(['okta system log entry, impossible travel alert fired', 'is this them or an attacker?']) + '\n') + fence(body)


@pos
def t_dsar():
    p = person()
    c = ch(['UK', 'DE', 'IE'] if coin(0.6) else ['US', 'CA'])
    lines = [T(f'Request type: {ch(["Access (Art. 15)", "Erasure (Art. 17)", "Rectification"])}'),
             P('Data subject: ⟨n⟩', n=v(nm(p), PE)), P('Email on file: ⟨e⟩', e=v(p.email(), E)),
             P('Date of birth: ⟨d⟩', d=v(dob(ch(['eu', 'dmy_long', 'dot'])), DOB)),
             P('Postal address:\n⟨a⟩', a=v(address('UK' if c == 'IE' else c, multiline=True), LO)),
             T(f'Received: {recent_date("dmy_long")}   Deadline: {recent_date("dmy_long")}')]
    return T(ch(['new DSAR came in through the privacy form, who picks it up?', 'privacy request, need to locate all records:']) +
             '\n') + fence(join(lines))


@pos
def t_claim_form():
    p = person()
    lines = [P('Claimant: ⟨n⟩', n=v(nm(p), PE)), P('DOB: ⟨d⟩', d=v(dob('us'), DOB)), T(f'Policy #: POL-{d(8)}'),
             T(f'Date of loss: {recent_date("us")}'), P('Contact: ⟨ph⟩ / ⟨e⟩', ph=v(phone(), PH), e=v(p.email(), E)),
             P('SSN (for 1099): ⟨s⟩', s=v(ssn(), SSN))]
    return T('claim intake that got stuck in the OCR queue:\n') + fence(join(lines))


@pos
def t_booking_json():
    pax = []
    for _ in range(ri(1, 3)):
        p = person()
        pax.append(P('    {"title": "⟨t⟩", "full_name": "⟨n⟩", "type": "ADT", "dob": "⟨d⟩", '
                     '"passport": {"number": "⟨pp⟩", "country": "US", "expires": "⟨ex⟩"}}',
                     t=ch(['MR', 'MS', 'MRS']), n=v(nm(p, 'u'), PE), d=v(dob('iso'), DOB),
                     pp=v(us_passport(), PP), ex=recent_date()))
    body = T('{\n  "booking_ref": "' + rs(6, UPNUM) + '",\n  "passengers": [\n') + join(pax, ',\n') + T('\n  ]\n}')
    return T(ch(['NDC order payload, the airline rejects pax 1', 'booking api request body:']) + '\n') + fence(body, 'json')


@pos
def t_idv_result():
    p = person()
    stt, num = dl()
    body = P('{\n  "verification_id": "⟨vid⟩",\n  "status": "needs_review",\n  "document": {\n    "type": "drivers_license",\n'
             '    "issuing_state": "⟨st⟩",\n    "number": "⟨n⟩",\n    "expiration_date": "⟨ex⟩",\n    "full_name": "⟨name⟩",\n'
             '    "date_of_birth": "⟨dob⟩",\n    "address": "⟨a⟩"\n  },\n  "checks": {"face_match": 0.62, "mrz": "n/a"}\n}',
             vid='vf_' + rs(20), st=stt, n=v(num, DL), ex=recent_date(), name=v(nm(p, ch(['n', 'u'])), PE),
             dob=v(dob('iso'), DOB), a=v(address('US'), LO))
    return T(ch(['IDV vendor result, face match is low but the doc looks fine?', 'manual review queue item:']) + '\n') + fence(body, 'json')


@pos
def t_background_csv():
    rows = [T('candidate,ssn,dob,dl_number,dl_state,package,ordered_on')]
    for _ in range(ri(2, 3)):
        p = person()
        stt, num = dl()
        rows.append(csvline([v(nm(p, ch(['n', 'lf'])), PE), v(ssn(), SSN), v(dob('us'), DOB), v(num, DL), stt,
                             ch(['basic', 'pro+mvr']), recent_date('us')]))
    return T('background check export from checkr, need to reconcile invoices\n') + fence(join(rows))


@pos
def t_wire_instructions():
    p = person()
    c = ch(['GB', 'DE', 'FR', 'NL', 'IE', 'ES', 'IT', 'BE', 'AT', 'CH', 'SE', 'DK', 'FI', 'PT'])
    body = P('Beneficiary name: ⟨n⟩\nBeneficiary address: ⟨a⟩\nIBAN: ⟨i⟩\nSWIFT/BIC: ⟨bic⟩\nIntermediary bank: CHASUS33\n'
             'Purpose: consulting invoice INV-⟨inv⟩', n=v(nm(p), PE), a=v(address(ch(['UK', 'DE'])), LO), i=v(iban(c), IB),
             bic=ch(BICS), inv=str(ri(1000, 9999)))
    return T(ch(['contractor changed bank details by email — verify before paying, could be BEC', 'wire instructions for the invoice:']) +
             '\n') + fence(body)


@pos
def t_sepa_xml():
    p = person()
    body = P('<CdtTrfTxInf>\n  <PmtId><EndToEndId>⟨e2e⟩</EndToEndId></PmtId>\n  <Amt><InstdAmt Ccy="EUR">⟨amt⟩</InstdAmt></Amt>\n'
             '  <CdtrAgt><FinInstnId><BICFI>⟨bic⟩</BICFI></FinInstnId></CdtrAgt>\n  <Cdtr><Nm>⟨n⟩</Nm></Cdtr>\n'
             '  <CdtrAcct><Id><IBAN>⟨i⟩</IBAN></Id></CdtrAcct>\n</CdtTrfTxInf>',
             e2e=rs(16, UPNUM), amt=f'{ri(10, 5000)}.{ri(0, 99):02d}', bic=ch(BICS), n=v(nm(p), PE), i=v(iban(grouped=False), IB))
    return T('pain.001 block the bank rejected with AC01:\n') + fence(body, 'xml')


@pos
def t_invoice_json():
    p = person()
    c = ch(['US', 'UK', 'CA', 'AU', 'IN', 'DE'])
    body = P('{"invoice": "INV-⟨no⟩", "issued": "⟨iss⟩", "due": "⟨due⟩", "bill_to": {"name": "⟨n⟩", "email": "⟨e⟩", '
             '"address": "⟨a⟩"}, "total": ⟨tot⟩, "currency": "⟨cur⟩"}', no=str(ri(10000, 99999)), iss=recent_date(),
             due=recent_date(), n=v(nm(p), PE), e=v(p.email(), E), a=v(address(c), LO), tot=str(ri(20, 9000)),
             cur=ch(['USD', 'GBP', 'CAD', 'AUD', 'INR', 'EUR']))
    return T(ch(['pdf renderer crashes on this invoice:', 'invoice json from the billing service: ']) + '\n') + fence(body)


@pos
def t_crash_log():
    p = person()
    body = P('Incident Identifier: ⟨uuid⟩\nHardware Model:      iPhone15,3\nOS Version:          iOS 17.4.1 (21E237)\n'
             'App Version:         ⟨ver⟩ (⟨build⟩)\nDate/Time:           ⟨ts⟩\n\nLast breadcrumb: login success user=⟨e⟩ '
             'device_ip=⟨ip⟩\nException Type:  EXC_BAD_ACCESS (SIGSEGV)',
             uuid=uuid4().upper(), ver=version(), build=str(ri(1000, 9999)), ts=ts_plain(), e=v(p.email(), E),
             ip=v(ip_any(), IP))
    return T('crash report from testflight:\n') + fence(body)


@pos
def t_graphql_vars():
    p = person()
    body = P('mutation UpdateContact($input: ContactInput!) { updateContact(input: $input) { id } }\n\nvariables:\n'
             '{"input": {"id": "⟨id⟩", "name": "⟨n⟩", "email": "⟨e⟩", "phone": "⟨ph⟩"}}',
             id=uuid4(), n=v(nm(p), PE), e=v(p.email(), E), ph=v(phone(), PH))
    return T('this mutation returns "phone invalid" but the number looks fine?\n') + fence(body, 'graphql')


@pos
def t_python_dict():
    p = person()
    body = P("{'id': ⟨id⟩, 'name': '⟨n⟩', 'email': '⟨e⟩', 'dob': '⟨dob⟩', 'ssn': '⟨s⟩', "
             "'created': datetime.datetime(2024, 3, 1, 12, 0)}",
             id=str(ri(1, 99999)), n=v(nm(p), PE), e=v(p.email(), E), dob=v(dob('iso'), DOB), s=v(ssn(), SSN))
    return T(ch(['printed the record in the shell:', 'pdb output:']) + '\n') + fence(T('>>> repr(user)\n') + body)


@pos
def t_laravel_env():
    body = P('APP_NAME=Portal\nAPP_ENV=production\nAPP_KEY=base64:⟨k⟩\nAPP_DEBUG=false\nAPP_URL=https://portal.⟨dom⟩\n\n'
             'DB_CONNECTION=mysql\nDB_HOST=⟨h⟩\nDB_PORT=3306\nDB_USERNAME=portal\nDB_PASSWORD=⟨p⟩\n\n'
             'MAIL_MAILER=smtp\nMAIL_HOST=smtp.mailgun.org\nMAIL_USERNAME=⟨mu⟩\nMAIL_PASSWORD=⟨mp⟩',
             k=v(b64(rbytes(32)), SE), dom=ch(WORK_DOMAINS), h=v(private_ipv4(), IP), p=v(password(), SE),
             mu=v('postmaster@mg.' + ch(WORK_DOMAINS), E), mp=v(rs(32, HEX) + '-' + rs(8, HEX) + '-' + rs(8, HEX), SE))
    return T(ch(['laravel .env from the client\'s server (they emailed it to us...)', '.env on the portal box:']) + '\n') + fence(body)


@pos
def t_rails_secret():
    body = P('production:\n  secret_key_base: ⟨k⟩\n  stripe:\n    secret_key: ⟨s⟩\n    publishable_key: pk_live_⟨pk⟩\n',
             k=v(rs(128, HEX), SE), s=v(stripe_sk(), SE), pk=rs(99))
    return T('output of `rails credentials:show` on prod:\n') + fence(body, 'yaml')


@pos
def t_sshpass():
    ip = ch([private_ipv4(), public_ipv4()])
    body = P("sshpass -p '⟨p⟩' ssh -o StrictHostKeyChecking=no admin@⟨ip⟩ 'sudo systemctl restart app'",
             p=v(password(), SE), ip=v(ip, IP))
    return T(ch(['the restart cron on jenkins does this:', 'found in the deploy script:']) + '\n') + fence(body, 'bash')


@pos
def t_login_prose():
    k = ri(0, 3)
    pw = password()
    if k == 0:
        return P('router admin is at ⟨ip⟩, login: admin / ⟨p⟩', ip=v(private_ipv4(), IP), p=v(pw, SE))
    if k == 1:
        return P('reset your vpn pw to ⟨p⟩ and change it after first login', p=v(pw, SE))
    if k == 2:
        return P('wifi for the offsite: network ⟨n⟩ pasword ⟨p⟩', n=ch(['AcmeGuest', 'Offsite-5G']), p=v(pw, SE))
    return P('grafana creds for the demo: `admin` / `⟨p⟩` (pw is temporary)', p=v(pw, SE))


@pos
def t_mysql_cli():
    ip = private_ipv4()
    pw = rs(ri(10, 18), ALNUM)
    body = P('$ mysql -h ⟨ip⟩ -u root -p⟨p⟩ shop -e "select count(*) from orders"\nmysql: [Warning] Using a password on the command line '
             'interface can be insecure.\n+----------+\n| count(*) |\n+----------+\n|   ⟨n⟩ |\n+----------+',
             ip=v(ip, IP), p=v(pw, SE), n=str(ri(100000, 999999)))
    return T('sanity check on the replica:\n') + fence(body)


@pos
def t_pgpassword():
    body = P('PGPASSWORD=\'⟨p⟩\' psql -h ⟨ip⟩ -U analytics -d warehouse -c "\\dt"', p=v(password(), SE), ip=v(private_ipv4(), IP))
    return T(ch(['runbook step 4 says to run', 'quick way in:']) + '\n') + fence(body, 'bash')


@pos
def t_git_credentials():
    p = person()
    lines = [P('https://⟨u⟩:⟨t⟩@github.com', u=p.ag, t=v(gh_pat(), SE)),
             P('https://oauth2:⟨t⟩@gitlab.com', t=v(glpat(), SE))]
    if coin(0.5):
        lines.append(P('https://⟨u⟩:⟨t⟩@bitbucket.org', u=p.ag, t=v('ATBB' + rs(32) + rs(8, HEX).upper(), SE)))
    return T('~/.git-credentials on the shared dev VM\n') + fence(join(lines))


@pos
def t_firebase_config():
    proj = ch(['orbitcart-prod', 'quill-app-7f3a2', 'helix-mobile'])
    body = P('const firebaseConfig = {\n  apiKey: "⟨k⟩",\n  authDomain: "⟨p⟩.firebaseapp.com",\n  projectId: "⟨p⟩",\n'
             '  storageBucket: "⟨p⟩.appspot.com",\n  messagingSenderId: "⟨sid⟩",\n  appId: "1:⟨sid⟩:web:⟨app⟩"\n};',
             k=v(google_key(), SE), p=proj, sid=str(ri(10 ** 11, 10 ** 12)), app=rs(22, HEX))
    return T('firebase init from the web app\n') + fence(body, 'js')


@pos
def t_bot_tokens():
    body = P('TELEGRAM_BOT_TOKEN=⟨t⟩\nDISCORD_BOT_TOKEN=⟨d⟩\nDISCORD_GUILD_ID=⟨g⟩', t=v(telegram(), SE), d=v(discord(), SE),
             g=str(ri(10 ** 17, 10 ** 18)))
    return T('community bot env, moving it to fly.io\n') + fence(body)


@pos
def t_atlassian_curl():
    p = person()
    em = p.email(ch(WORK_DOMAINS))
    tok = atlassian()
    body = P('curl -u ⟨e⟩:⟨t⟩ -H "Accept: application/json" "https://acme.atlassian.net/rest/api/3/search?jql=project=OPS"',
             e=v(em, E), t=v(tok, SE))
    return T('jira export script:\n') + fence(body, 'bash')


@pos
def t_oauth_response():
    at = ch([jwt('RS256'), 'ya29.' + rs(150, B64URL), rs(40)])
    rt = ch(['1//0' + rs(100, B64URL), rs(64, B64URL)])
    body = P('{\n  "access_token": "⟨a⟩",\n  "token_type": "Bearer",\n  "expires_in": 3599,\n  "refresh_token": "⟨r⟩",\n'
             '  "scope": "openid email profile"\n}', a=v(at, SE), r=v(rt, SE))
    return T(ch(['token endpoint response, refresh fails after 1h', 'got this back from /oauth/token']) + '\n') + fence(body, 'json')


@pos
def t_alertmanager():
    p = person()
    body = P("global:\n  smtp_smarthost: 'smtp.office365.com:587'\n  smtp_from: '⟨fr⟩'\n  smtp_auth_username: '⟨fr⟩'\n"
             "  smtp_auth_password: '⟨p⟩'\n  slack_api_url: '⟨w⟩'\nroute:\n  receiver: oncall\n  group_wait: 30s",
             fr=v('alerts@' + ch(WORK_DOMAINS), E), p=v(password(), SE), w=v(slack_webhook(), SE))
    return T('alertmanager.yml, emails work but slack doesn\'t\n') + fence(body, 'yaml')


@pos
def t_gha_hardcoded():
    tok = ch([npm_tok(), gh_pat(), dockerhub()])
    body = P('jobs:\n  publish:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: npm publish\n'
             '        env:\n          NODE_AUTH_TOKEN: ⟨t⟩\n          SLACK_WEBHOOK: ${{ secrets.SLACK_WEBHOOK }}', t=v(tok, SE))
    return T('PR #⟨n⟩ hardcodes the token, pls block\n'.replace('⟨n⟩', str(ri(100, 3000)))) + fence(body, 'yaml')


@pos
def t_heroku_config():
    pw = password(True)
    body = P('$ heroku config -a ⟨app⟩\n=== ⟨app⟩ Config Vars\nDATABASE_URL:      postgres://u⟨uu⟩:⟨p⟩@ec2-⟨a⟩-⟨b⟩-⟨c⟩-⟨d⟩.compute-1.amazonaws.com:5432/⟨db⟩\n'
             'REDIS_TLS_URL:     rediss://:⟨p2⟩@ec2-⟨a⟩-⟨b⟩-⟨c⟩-⟨d⟩.compute-1.amazonaws.com:17690\nWEB_CONCURRENCY:   2',
             app=ch(APP_NAMES), uu=rs(12, LOWNUM), p=v('p' + rs(64, HEX), SE), a=str(ri(3, 54)), b=str(ri(0, 255)),
             c=str(ri(0, 255)), d=str(ri(1, 254)), db=rs(14, LOWNUM), p2=v('p' + rs(64, HEX), SE))
    return T('config vars:\n') + fence(body)


@pos
def t_sts_output():
    body = P('{\n    "Credentials": {\n        "AccessKeyId": "⟨k⟩",\n        "SecretAccessKey": "⟨s⟩",\n        "SessionToken": "⟨t⟩",\n'
             '        "Expiration": "⟨ex⟩"\n    },\n    "AssumedRoleUser": {\n        "AssumedRoleId": "AROA⟨rid⟩:ci",\n'
             '        "Arn": "arn:aws:sts::⟨acct⟩:assumed-role/deploy/ci"\n    }\n}',
             k=v(aws_key_id(True), SE), s=v(aws_secret(), SE), t=v(aws_session(), SE), ex=ts(), rid=rs(17, UPNUM),
             acct=aws_account())
    return T(ch(['assume-role works from my laptop:', 'output of aws sts assume-role (expires in an hour anyway)']) + '\n') + \
        fence(body, 'json')


@pos
def t_gcp_sa_json():
    proj = ch(['acme-data-prod', 'orbit-ml-123', 'helix-analytics'])
    key = pem_private('pkcs8')
    sa = f'{ch(["etl-runner", "bq-reader", "deployer"])}@{proj}.iam.gserviceaccount.com'
    body = P('{\n  "type": "service_account",\n  "project_id": "⟨p⟩",\n  "private_key_id": "⟨kid⟩",\n  "private_key": "⟨k⟩\\n",\n'
             '  "client_email": "⟨sa⟩",\n  "client_id": "⟨cid⟩",\n  "token_uri": "https://oauth2.googleapis.com/token"\n}',
             p=proj, kid=rs(40, HEX), k=v(key.replace('\n', '\\n'), SE), sa=v(sa, E), cid=str(ri(10 ** 20, 10 ** 21)))
    return T(ch(['service account key json (I know, I know, rotating after)', 'bq client fails with this key file:']) + '\n') + \
        fence(body, 'json')


@pos
def t_payment_error_log():
    num = card_number()
    p = person()
    body = P('⟨ts⟩ ERROR gateway.client: declined request={"card_number":"⟨c⟩","exp":"⟨ex⟩","name":"⟨n⟩","amount":⟨a⟩} '
             'response={"code":"05","message":"Do not honor"} order=⟨o⟩',
             ts=ts(), c=v(num, CC), ex=f'{ri(1, 12):02d}{ri(25, 31)}', n=v(nm(p, 'u'), PE), a=str(ri(100, 99999)),
             o=order_id())
    return T(ch(['the gateway client logs full PANs 😱 found in kibana:', 'this is in our logs, PCI issue?']) + '\n') + fence(body)


@pos
def t_refund_csv_iban():
    rows = [T('refund_id,account_holder,iban,bic,amount_eur,requested')]
    for _ in range(ri(2, 4)):
        p = person()
        rows.append(csvline([f'RF{ri(10000, 99999)}', v(nm(p), PE), v(iban(grouped=coin(0.3)), IB), ch(BICS),
                             f'{ri(5, 900)}.{ri(0, 99):02d}', recent_date()]))
    return T('SEPA refunds batch for tomorrow, two bounced last time\n') + fence(join(rows))


@pos
def t_sms_list():
    nums = [e164() for _ in range(ri(3, 6))]
    segs = join([P('"⟨n⟩"', n=v(x, PH)) for x in nums], ', ')
    body = T('{"campaign_id": "' + uuid4() + '", "to": [') + segs + T('], "template": "otp_v2"}')
    return T('bulk sms request that got flagged as spam:\n') + fence(body, 'json')


@pos
def t_whatsapp_export():
    a, b = person(), person()
    dd = recent_date('eu')
    tt = hhmm_seq(2)
    lines = [P('⟨d⟩, ⟨t⟩ - ⟨a⟩: can you send me the wifi and the alarm code for the flat', d=dd, t=tt[0], a=v(nm(a, 'n'), PE)),
             P('⟨d⟩, ⟨t⟩ - ⟨b⟩: sure, address is ⟨addr⟩, call me on ⟨ph⟩ when you arrive', d=dd, t=tt[1], b=v(nm(b, 'n'), PE),
               addr=v(address(), LO), ph=v(phone(), PH))]
    return T('exported from whatsapp for the incident report:\n') + fence(join(lines))


@pos
def t_zoom_dialin():
    mid = f'{ri(800, 999)} {d(4)} {d(4)}'
    ph1 = ch([f'+1 {ch(["646", "669", "312", "253"])} {nz(3)} {d(4)}', f'+44 20 3{d(3)} {d(4)}'])
    body = P('Join Zoom Meeting\nhttps://acme.zoom.us/j/⟨mid⟩\n\nMeeting ID: ⟨mids⟩\nOne tap mobile\n⟨ph⟩,,⟨mid⟩# US\n\nDial by your location\n'
             '        ⟨ph2⟩ US', mid=mid.replace(' ', ''), mids=mid, ph=v(ph1.replace(' ', ''), PH), ph2=v(ph1, PH))
    return T('dial-in for the customer call (they can\'t use the app)\n') + fence(body)


@pos
def t_vcard():
    p = person()
    body = P('BEGIN:VCARD\nVERSION:3.0\nFN:⟨n⟩\nTEL;TYPE=CELL:⟨ph⟩\nEMAIL;TYPE=INTERNET:⟨e⟩\nBDAY:⟨b⟩\nORG:⟨org⟩\nEND:VCARD',
             n=v(nm(p, 'n'), PE), ph=v(phone(), PH), e=v(p.email(), E), b=v(dob('iso'), DOB), org=ch(COMPANIES))
    return T('contact import fails on this vcf, the BDAY line?\n') + fence(body)


@pos
def t_ical():
    a, b = person(), person()
    ea, eb = a.email(ch(WORK_DOMAINS)), b.email()
    body = P('BEGIN:VEVENT\nDTSTART:⟨ds⟩T150000Z\nDTEND:⟨ds⟩T153000Z\nSUMMARY:Quarterly review\nORGANIZER;CN=⟨na⟩:mailto:⟨ea⟩\n'
             'ATTENDEE;CN=⟨nb⟩;RSVP=TRUE:mailto:⟨eb⟩\nUID:⟨uid⟩\nEND:VEVENT',
             ds=recent_date().replace('-', ''), na=v(nm(a, 'n'), PE), ea=v(ea, E), nb=v(nm(b, 'n'), PE), eb=v(eb, E),
             uid=uuid4() + '@calendar')
    return T('invite ics the calendar sync mangles:\n') + fence(body)


@pos
def t_email_headers():
    a, b = person(), person()
    ip = public_ipv4()
    body = P('Received: from mail-⟨x⟩.example.net ([⟨ip⟩]) by mx.⟨dom⟩ with ESMTPS id ⟨id⟩\nFrom: "⟨na⟩" <⟨ea⟩>\n'
             'To: ⟨eb⟩\nSubject: Updated bank details for invoice\nDate: Mon, 13 May 2024 08:41:09 +0000\n'
             'X-Mailer: ⟨mid⟩', x=rs(6, LOWNUM), ip=v(ip, IP), dom=ch(WORK_DOMAINS), id=rs(12),
             na=v(nm(a, 'n'), PE), ea=v(a.email(), E), eb=v(b.email(ch(WORK_DOMAINS)), E),
             mid=ch(['Microsoft Outlook 16.0', 'Apple Mail (2.3774.500.171)', 'PHPMailer 6.8.1']))
    return T(ch(['phishing report, headers below', 'suspicious email finance got:']) + '\n') + fence(body)


@pos
def t_git_log_author():
    a = person()
    body = P('commit ⟨sha⟩\nAuthor: ⟨n⟩ <⟨e⟩>\nDate:   Thu May 9 14:02:11 2024 +0200\n\n    fix: handle null billing address\n',
             sha=git_sha(), n=v(nm(a, 'n'), PE), e=v(a.email(), E))
    return T(ch(['who wrote this? git log says', 'this commit broke checkout:']) + '\n') + fence(body)


@pos
def t_package_json_author():
    a = person()
    body = P('{\n  "name": "@acme/⟨pkg⟩",\n  "version": "⟨ver⟩",\n  "author": "⟨n⟩ <⟨e⟩>",\n  "license": "MIT",\n'
             '  "dependencies": {"lodash": "^4.17.21"}\n}', pkg=ch(APP_NAMES), ver=version(), n=v(nm(a, 'n'), PE),
             e=v(a.email(), E))
    return T('package.json of the forked lib:\n') + fence(body, 'json')


@pos
def t_salesforce_csv():
    rows = [T('"Lead ID","Full Name","Company","Email","Mobile","Lead Source","Created Date"')]
    for _ in range(ri(2, 4)):
        p = person()
        rows.append(P('"00Q⟨id⟩","⟨n⟩","⟨co⟩","⟨e⟩","⟨ph⟩","Webinar","⟨cd⟩"', id=rs(12), n=v(nm(p), PE), co=ch(COMPANIES),
                      e=v(p.email(ch(WORK_DOMAINS)), E), ph=v(phone(), PH), cd=recent_date('us')))
    return T('leads from the webinar for the SDRs\n') + fence(join(rows))


@pos
def t_jira_desc():
    p = person()
    body = P('h3. Steps\n# Customer ⟨n⟩ (⟨e⟩) tried to update their address to ⟨a⟩\n# Form returns 500\n\n'
             'h3. Env\nprod, build ⟨ver⟩, request id ⟨rid⟩', n=v(nm(p), PE), e=v(p.email(), E), a=v(address(), LO),
             ver=version(), rid=uuid4())
    return P('⟨t⟩ description for triage:\n', t=ticket()) + fence(body)


@pos
def t_fetch_copy():
    k = ch([rs(32, HEX), 'key_live_' + rs(32), rs(40)])
    sess = rs(64, HEX)
    body = P('fetch("https://app.⟨dom⟩/api/reports/export", {\n  "headers": {\n    "accept": "application/json",\n'
             '    "x-api-key": "⟨k⟩",\n    "cookie": "session=⟨s⟩; tz=Europe%2FBerlin"\n  },\n  "method": "POST"\n});',
             dom=ch(WORK_DOMAINS), k=v(k, SE), s=v(sess, SE))
    return T('copied as fetch from devtools, works in browser but not in node\n') + fence(body, 'js')


@pos
def t_terraform_state():
    body = P('{\n  "type": "aws_db_instance",\n  "name": "main",\n  "instances": [{\n    "attributes": {\n'
             '      "address": "main.⟨x⟩.eu-west-1.rds.amazonaws.com",\n      "username": "dbadmin",\n      "password": "⟨p⟩",\n'
             '      "port": 5432,\n      "arn": "arn:aws:rds:eu-west-1:⟨acct⟩:db:main"\n    }\n  }]\n}',
             x=rs(12, LOWNUM), p=v(password(), SE), acct=aws_account())
    return T('terraform.tfstate in the bucket has the plaintext pw:\n') + fence(body, 'json')


@pos
def t_cloudwatch_json_log():
    p = person()
    body = P('{"timestamp":"⟨ts⟩","level":"info","msg":"password reset requested","email":"⟨e⟩","sourceIp":"⟨ip⟩",'
             '"requestId":"⟨rid⟩","awsRegion":"⟨r⟩"}', ts=ts(), e=v(p.email(), E), ip=v(ip_any(), IP), rid=uuid4(),
             r=ch(REGIONS[:6]))
    return T('cloudwatch insights result, 40 of these in a minute:\n') + fence(body)


@pos
def t_dl_chat_prose():
    p = person()
    stt, num = dl()
    k = ri(0, 2)
    if k == 0:
        return P('rental desk needs the driver for the offsite van: ⟨n⟩, dl no ⟨dl⟩ (⟨st⟩), dob ⟨d⟩', n=v(nm(p, 'l'), PE),
                 dl=v(num, DL), st=STATE_NAMES[stt], d=v(dob('us'), DOB))
    if k == 1:
        return P('`{"driver": "⟨n⟩", "license": "⟨dl⟩", "state": "⟨st⟩"}` <- this is what the fleet api wants right?',
                 n=v(nm(p), PE), dl=v(num, DL), st=stt)
    return P('insurance needs license # for ⟨n⟩ → ⟨dl⟩ ⟨st⟩', n=v(nm(p), PE), dl=v(num, DL), st=stt)


@pos
def t_passport_json():
    p = person()
    body = P('{"traveler": {"name": "⟨n⟩", "birth_date": "⟨d⟩", "document": {"type": "P", "number": "⟨pp⟩", '
             '"issuing_country": "USA", "expiry": "⟨ex⟩"}, "emergency_phone": "⟨ph⟩"}}',
             n=v(nm(p), PE), d=v(dob('iso'), DOB), pp=v(us_passport(), PP), ex=recent_date(), ph=v(phone(), PH))
    return T(ch(['visa service payload:', 'travel desk api body:']) + ' ') + T('`') + body + T('`')


@pos
def t_mailto_links():
    a, b = person(), person()
    ea, eb = a.email(), b.email(ch(WORK_DOMAINS))
    return P('can you loop in ⟨na⟩ ', na=v(nm(a, 'n'), PE)) + RAW('<mailto:') + [(ea, E)] + RAW('|') + [(ea, E)] + RAW('>') + \
        T(' and cc ') + RAW('<mailto:') + [(eb, E)] + RAW('|') + [(eb, E)] + RAW('>') + T(' on the export thread')


@pos
def t_urlencoded_email_link():
    p = person()
    em = p.email()
    enc = em.replace('@', '%40')
    return T('admin link for the account: ') + RAW('<https://admin.' + ch(WORK_DOMAINS) + '/users?email=') + [(enc, E)] + \
        T('&tab=billing') + RAW('|admin panel>') + T(' (customer says they never got the reset mail)')


@pos
def t_ssn_call_notes():
    p = person()
    s = ssn(ch(['space', 'plain', 'dash']))
    body = P('Call notes ⟨d⟩\nCaller: ⟨n⟩\nVerified with: social ⟨s⟩, dob ⟨dob⟩\nCallback: ⟨ph⟩ ext. ⟨x⟩\nIssue: duplicate 1099',
             d=recent_date('us'), n=v(nm(p), PE), s=v(s, SSN), dob=v(dob('short'), DOB), ph=v(phone('US'), PH),
             x=str(ri(100, 999)))
    return T('pasting call notes from the phone system:\n') + fence(body)


@pos
def t_k8s_deployment_env():
    body = P('      containers:\n      - name: api\n        image: ghcr.io/acme/api:⟨ver⟩\n        env:\n        - name: DB_HOST\n'
             '          value: ⟨ip⟩\n        - name: DB_PASSWORD\n          value: "⟨p⟩"\n        - name: JWT_SECRET\n'
             '          value: ⟨j⟩\n        - name: REDIS_PASSWORD\n          valueFrom:\n            secretKeyRef: {name: redis, key: password}',
             ver=version(), ip=v(private_ipv4(), IP), p=v(password(), SE), j=v(rs(48, B64URL), SE))
    return T('deployment.yaml from the PR, the pw should come from a secret\n') + fence(body, 'yaml')


@pos
def t_supabase_env():
    body = P('NEXT_PUBLIC_SUPABASE_URL=https://⟨r⟩.supabase.co\nNEXT_PUBLIC_SUPABASE_ANON_KEY=⟨anon⟩\nSUPABASE_SERVICE_ROLE_KEY=⟨sr⟩',
             r=rs(20, string.ascii_lowercase), anon=v(jwt('HS256', {'role': 'anon', 'iss': 'supabase'}), SE),
             sr=v(jwt('HS256', {'role': 'service_role', 'iss': 'supabase'}), SE))
    return T('env for the vercel project:\n') + fence(body)


@pos
def t_lease_application():
    p = person()
    stt, num = dl()
    body = P('RENTAL APPLICATION\nApplicant name: ⟨n⟩\nDate of Birth: ⟨d⟩\nSocial Security #: ⟨s⟩\nDriver License: ⟨dl⟩  State: ⟨st⟩\n'
             'Current address:\n⟨a⟩\nEmployer: ⟨co⟩\nMonthly income: $⟨inc⟩',
             n=v(nm(p), PE), d=v(dob('long'), DOB), s=v(ssn(), SSN), dl=v(num, DL), st=stt,
             a=v(address('US', multiline=True), LO), co=ch(COMPANIES), inc=f'{ri(3, 15)},{ri(0, 999):03d}')
    return T('OCR output of the scanned application, tenant screening wants it as text\n') + fence(body)


@pos
def t_mixed_incident():
    p = person()
    body = P('user_id=⟨uid⟩ email=⟨e⟩ last_ip=⟨ip⟩ card_fingerprint=⟨fp⟩ last4=⟨l4⟩ risk=0.93 created=⟨ts⟩\n'
             'linked_accounts: ⟨e2⟩ (same device id ⟨dev⟩)', uid=str(ri(10000, 999999)), e=v(p.email(), E),
             ip=v(ip_any(), IP), fp=rs(16), l4=d(4), ts=ts(), e2=v(person().email(), E), dev=uuid4())
    return T(ch(['fraud flagged this one, same device as the chargeback cluster', 'risk engine output:']) + '\n') + fence(body)


@pos
def t_dob_prose_record():
    p = person()
    k = ri(0, 2)
    if k == 0:
        return P('pls fix the typo in the HRIS: ⟨n⟩ dob should be ⟨d⟩ not ⟨wrong⟩', n=v(nm(p, 'l'), PE), d=v(dob(), DOB),
                 wrong=v(dob(), DOB))
    if k == 1:
        return P('`name=⟨n⟩ | born=⟨d⟩ | member_since=⟨ms⟩`', n=v(nm(p), PE), d=v(dob('dmy_long'), DOB), ms=recent_date())
    return P('age check failing for ⟨n⟩ — birthdate on file is ⟨d⟩, signup was ⟨sd⟩', n=v(nm(p), PE), d=v(dob('long'), DOB),
             sd=recent_date('long'))


@pos
def t_script_names_csv():
    rows = [T('user_id,display_name,email,phone,locale')]
    for _ in range(ri(2, 4)):
        p = person(script=True)
        rows.append(csvline([str(ri(1000, 99999)), v(p.full, PE), v(p.email(), E), v(phone(), PH),
                             ch(['zh-CN', 'ko-KR', 'ar-SA', 'el-GR', 'uk-UA', 'ja-JP', 'hi-IN', 'he-IL'])]))
    return T('unicode names break the PDF export, sample rows:\n') + fence(join(rows))


@pos
def t_title_family():
    p = person()
    fam = p.family if p.family else p.af.capitalize()
    title = ch(['Dr.', 'Dr', 'Mr.', 'Ms.', 'Mrs', 'Prof.'])
    body = P('Referral from ⟨t⟩ — patient ⟨n⟩, DOB ⟨d⟩, contact ⟨ph⟩', t=v(f'{title} {fam}', PE), n=v(nm(person()), PE),
             d=v(dob('us'), DOB), ph=v(phone(), PH))
    return T('fax-to-text output:\n') + fence(body)



@pos
def t_qa_test_cards():
    cards = R.sample(TEST_CARDS, ri(2, 4))
    lines = [P('⟨c⟩  ⟨desc⟩', c=v(fmt_card(c, ch(['plain', 'space'])), CC),
               desc=ch(['succeeds', 'requires 3DS', 'declined', 'insufficient funds', 'any exp/cvc'])) for c in cards]
    return T(ch(['cards for the checkout regression run:', 'QA card list (stripe test numbers) for the sandbox:']) + '\n') + \
        fence(join(lines))


@pos
def t_card_csv_migration():
    rows = [T('token_id,cardholder,pan,exp,last4,brand')]
    for _ in range(ri(2, 4)):
        p = person()
        b = ch(['visa', 'mc', 'amex', 'disc', 'mc2', 'jcb'])
        n = card_number(b)
        rows.append(csvline([f'tok_{rs(12, LOWNUM)}', v(nm(p, ch(['u', 'n'])), PE), v(n, CC),
                             f'{ri(1, 12):02d}/{ri(25, 31)}', n[-4:], b]))
    return T('dry run of the vault migration wrote PANs to the debug csv?! first rows:\n') + fence(join(rows))


@pos
def t_form_post_urlencoded():
    p = person()
    n = card_number(ch(['visa', 'mc', 'amex', 'disc']))
    body = P('POST /pay HTTP/1.1\nHost: legacy-checkout.internal\nContent-Type: application/x-www-form-urlencoded\n\n'
             'name=⟨n⟩&email=⟨e⟩&card_number=⟨c⟩&exp_month=⟨m⟩&exp_year=⟨y⟩&cvc=⟨cvc⟩&amount=⟨a⟩',
             n=v(urllib.parse.quote_plus(nm(p, 'n')), PE), e=v(p.email().replace('@', '%40'), E), c=v(n, CC),
             m=f'{ri(1, 12):02d}', y=str(ri(2025, 2031)), cvc=d(3), a=str(ri(100, 50000)))
    return T('the legacy checkout still posts raw card data, captured in the WAF log:\n') + fence(body)


@pos
def t_chargeback_json():
    p = person()
    n = card_number()
    body = P('{"dispute_id": "dp_⟨id⟩", "reason": "fraudulent", "amount": ⟨a⟩, "cardholder": {"name": "⟨n⟩", "pan": "⟨c⟩", '
             '"billing_zip": "⟨z⟩"}, "network_reference": "⟨ref⟩", "respond_by": "⟨rb⟩"}',
             id=rs(14), a=str(ri(500, 90000)), n=v(nm(p), PE), c=v(fmt_card(n, 'plain'), CC), z=d(5),
             ref=luhn_invalid(16), rb=recent_date())
    return T('acquirer dispute feed includes the full PAN, is that expected?\n') + fence(body, 'json')


@pos
def t_ivr_transcript():
    p = person()
    n = card_number(ch(['visa', 'mc']))
    spoken = ' '.join(n[i:i + 4] for i in range(0, 16, 4))
    body = P('AGENT: can I have the name on the card?\nCALLER: ⟨n⟩\nAGENT: and the card number?\nCALLER: ⟨c⟩\n'
             'AGENT: expiry?\nCALLER: ⟨ex⟩\nAGENT: and your date of birth for verification?\nCALLER: ⟨dob⟩',
             n=v(nm(p, 'l'), PE), c=v(spoken, CC), ex=f'{ri(1, 12):02d} {ri(25, 31)}', dob=v(dob('long').lower(), DOB))
    return T('speech-to-text of the IVR call, the pause-and-resume didn\'t kick in:\n') + fence(body)


@pos
def t_iban_json_payout():
    p = person()
    c = ch(list(IBAN_SPEC))
    body = P('{"payout": {"id": "po_⟨id⟩", "amount": ⟨a⟩, "currency": "EUR", "destination": {"account_holder": "⟨n⟩", '
             '"iban": "⟨i⟩", "bic": "⟨bic⟩"}, "status": "failed", "failure_code": "account_closed"}}',
             id=rs(14), a=str(ri(1000, 500000)), n=v(nm(p), PE), i=v(iban(c, grouped=False), IB), bic=ch(BICS))
    return T(ch(['payout bounced:', 'bank says account closed, but the seller insists:']) + '\n') + fence(body, 'json')


@pos
def t_iban_prose():
    p = person()
    ib = iban(ch(list(IBAN_SPEC)), grouped=coin(0.6))
    tt = hhmm_seq(2)
    lines = [P('[⟨t⟩] ⟨n⟩: hi, please update my payout account to ⟨i⟩', t=tt[0], n=v(nm(p, 'n'), PE), i=v(ib, IB)),
             T(f'[{tt[1]}] support-bot: for security we can only change bank details from the dashboard')]
    return T('seller tried to change IBAN over chat, possible ATO:\n') + fence(join(lines))


@pos
def t_stripe_bank_token():
    p = person()
    body = P('curl https://api.stripe.com/v1/tokens \\\n  -u ⟨sk⟩: \\\n  -d "bank_account[country]"=US \\\n  -d "bank_account[currency]"=usd \\\n'
             '  -d "bank_account[account_holder_name]"="⟨n⟩" \\\n  -d "bank_account[routing_number]"=⟨r⟩ \\\n'
             '  -d "bank_account[account_number]"=⟨a⟩', sk=v(stripe_sk(), SE), n=v(nm(p, 'n'), PE), r=v(aba_routing(), BA),
             a=v(bank_account(), BA))
    return T('ops ran this by hand to fix the payout account:\n') + fence(body, 'bash')


@pos
def t_w9_json():
    p = person()
    body = P('{"form": "W-9", "name": "⟨n⟩", "tin_type": "SSN", "tin": "⟨s⟩", "address": "⟨a⟩", "signed_at": "⟨ts⟩"}',
             n=v(nm(p), PE), s=v(ssn(ch(['dash', 'plain'])), SSN), a=v(address('US'), LO), ts=ts())
    return T('contractor W-9 payload from the portal (why is this in the event bus?)\n') + fence(body, 'json')


@pos
def t_passport_csv():
    rows = [T('traveller,passport_number,passport_expiry,dob,mobile')]
    for _ in range(ri(2, 4)):
        p = person()
        rows.append(csvline([v(nm(p, ch(['n', 'u'])), PE), v(us_passport(), PP), recent_date(), v(dob('iso'), DOB),
                             v(phone(), PH)]))
    return T('roster for the conference travel, agency needs it by friday\n') + fence(join(rows))


@pos
def t_ach_return_log():
    p = person()
    body = P('⟨ts⟩ WARN ach.returns code=R03 "No Account/Unable to Locate" name="⟨n⟩" rtn=⟨r⟩ acct=⟨a⟩ trace=⟨tr⟩',
             ts=ts(), n=v(nm(p, 'u'), PE), r=v(aba_routing(), BA), a=v(bank_account(), BA), tr=d(15))
    return T('ACH return from this morning\'s file:\n') + fence(body)


# ==================================================================================
# CLEAN templates (no spans) - hard negatives in the same paste styles
# ==================================================================================
@neg
def n_env_placeholders():
    lines = ['NODE_ENV=production', f'PORT={port()}', 'DB_HOST=${DB_HOST}', 'DB_PASSWORD=${DB_PASSWORD}',
             'STRIPE_SECRET_KEY=${STRIPE_SECRET_KEY}', 'DATADOG_API_KEY=', 'SLACK_BOT_TOKEN=xoxb-your-token',
             'OPENAI_API_KEY=YOUR_API_KEY', 'REDIS_URL=redis://localhost:6379/0', f'AWS_REGION={ch(REGIONS[:6])}',
             'SENTRY_DSN=', 'JWT_SECRET=<generate with openssl rand -hex 32>', 'LOG_LEVEL=info']
    R.shuffle(lines)
    return T(ch(['.env.example for the new service, fill in from 1password', 'template env, real values are in vault',
                 'is this enough for local dev?']) + '\n') + fence(T('\n'.join(lines[:ri(7, 12)])))


@neg
def n_gha_secrets():
    body = ('name: deploy\non:\n  push:\n    branches: [main]\njobs:\n  deploy:\n    runs-on: ubuntu-latest\n    steps:\n'
            '      - uses: actions/checkout@v4\n      - uses: aws-actions/configure-aws-credentials@v4\n        with:\n'
            '          aws-access-key-id: ${{ secrets.AWS_ACCESS_KEY_ID }}\n          aws-secret-access-key: ${{ secrets.AWS_SECRET_ACCESS_KEY }}\n'
            f'          aws-region: {ch(REGIONS[:6])}\n      - run: ./deploy.sh\n        env:\n          SLACK_WEBHOOK_URL: ${{{{ secrets.SLACK_WEBHOOK_URL }}}}\n'
            '          NPM_TOKEN: ${{ secrets.NPM_TOKEN }}')
    return T(ch(['workflow is fine now, secrets come from the repo settings', 'why does the deploy job not see the secret?']) +
             '\n') + fence(T(body), 'yaml')


@neg
def n_compose_refs():
    body = ('services:\n  db:\n    image: postgres:16\n    env_file: .env\n    environment:\n      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it}\n'
            '      POSTGRES_USER: app\n    ports:\n      - "127.0.0.1:5432:5432"\n  mq:\n    image: rabbitmq:3.13-management\n'
            '    environment:\n      RABBITMQ_DEFAULT_PASS_FILE: /run/secrets/rabbit_pass\n    secrets: [rabbit_pass]\n'
            'secrets:\n  rabbit_pass:\n    file: ./secrets/rabbit_pass.txt')
    return T('compose after the cleanup, no more inline passwords\n') + fence(T(body), 'yaml')


@neg
def n_configmap():
    body = (f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {ch(APP_NAMES)}-config\ndata:\n  LOG_LEVEL: info\n'
            f'  FEATURE_FLAGS: "checkout_v2,fast_refunds"\n  UPSTREAM_URL: http://orders.{ch(["prod", "default"])}.svc.cluster.local:8080\n'
            f'  MAX_CONNECTIONS: "{ri(10, 200)}"\n  TZ: UTC')
    return T('configmap diff looks ok to me?\n') + fence(T(body), 'yaml')


@neg
def n_kubectl_get_pods():
    lines = ['NAME                                READY   STATUS             RESTARTS      AGE']
    for _ in range(ri(3, 6)):
        name = f'{ch(APP_NAMES)}-{rs(10, LOWNUM)}-{rs(5, LOWNUM)}'
        st = ch(['Running', 'Running', 'CrashLoopBackOff', 'Pending', 'OOMKilled'])
        lines.append(f'{name:<36}{ch(["1/1", "0/1", "2/2"]):<8}{st:<19}{ri(0, 40)} ({ri(1, 59)}m ago)   {ri(1, 30)}d')
    return T(ch(['pods keep restarting in prod:', 'after the node drain:', 'kubectl get pods -n payments']) + '\n') + \
        fence(T('\n'.join(lines)))


@neg
def n_logs_uuids():
    lines = []
    for _ in range(ri(4, 7)):
        lines.append(ch([
            f'{ts()} INFO  request_id={uuid4()} method=POST path=/v1/orders status=201 duration_ms={ri(3, 900)}',
            f'{ts()} WARN  trace_id={trace_id()} span_id={span_id()} upstream timeout after {ri(1, 30)}s',
            f'{ts()} INFO  listening on 127.0.0.1:{ri(3000, 9000)}',
            f'{ts()} ERROR job={uuid4()} attempt={ri(1, 5)}/5 error="deadline exceeded"',
            f'{ts()} DEBUG cache miss key=user:{ri(1000, 999999)}:prefs ttl=300',
            f'{ts()} INFO  order {order_id()} state=paid amount={ri(100, 99999)} currency=eur',
        ]))
    return T(ch(['logs around the time of the incident', 'noisy but here you go:', 'grep for the request shows']) + '\n') + \
        fence(T('\n'.join(lines)))


@neg
def n_git_log_oneline():
    msgs = ['fix(billing): round tax per line item', 'chore(deps): bump axios from 1.6.7 to 1.6.8', 'feat: add retry to webhook sender',
            'revert "feat: new checkout flow"', 'docs: update runbook for failover', 'refactor: extract address validator',
            'test: flaky e2e for refunds', 'ci: cache pnpm store']
    lines = [f'{git_sha(7)} {ch(msgs)}' for _ in range(ri(4, 7))]
    return T(ch(['what went out in the last deploy:', 'git log --oneline v2.14.0..HEAD', 'which of these could break refunds?']) +
             '\n') + fence(T('\n'.join(lines)))


@neg
def n_docker_pull_digests():
    img = ch(['ghcr.io/acme/api', 'postgres', 'redis', 'nginx', 'acme/worker'])
    tag = ch(['16.2', '7.2-alpine', '1.25', version(), 'latest'])
    lines = [f'{tag}: Pulling from {img}'] + [f'{rs(12, HEX)}: Pull complete' for _ in range(ri(3, 5))] + \
        [f'Digest: sha256:{sha256()}', f'Status: Downloaded newer image for {img}:{tag}']
    return T('image pulled fine on the runner:\n') + fence(T('\n'.join(lines)))


@neg
def n_stripe_objects():
    body = (f'{{\n  "id": "{stripe_id("pi")}",\n  "object": "payment_intent",\n  "customer": "{stripe_id("cus")}",\n'
            f'  "payment_method": "{stripe_id("pm")}",\n  "amount": {ri(100, 99999)},\n  "currency": "usd",\n  "status": "requires_action",\n'
            f'  "card": {{"brand": "mastercard", "last4": "{d(4)}", "exp_month": {ri(1, 12)}, "exp_year": {ri(2025, 2031)}, "cvc_check": "pass", "fingerprint": "{rs(16)}"}},\n'
            f'  "client_secret": null,\n  "publishable_key": "pk_live_{rs(24)}",\n  "created": {epoch()}\n}}')
    return T(ch(['3DS keeps looping for this PI, object below', 'payment intent from the dashboard:']) + '\n') + fence(T(body), 'json')


@neg
def n_twilio_message_status():
    body = (f'{{"sid": "{twilio_sid("SM")}", "account_sid": "{twilio_sid("AC")}", "messaging_service_sid": "{twilio_sid("MG")}", '
            f'"status": "undelivered", "error_code": 30007, "num_segments": "1", "date_created": "Tue, 14 May 2024 10:02:11 +0000", '
            f'"price": "-0.00790", "api_version": "2010-04-01"}}')
    return T(ch(['carrier filtering again (30007), status callback:', 'twilio says undelivered:']) + '\n') + fence(T(body), 'json')


@neg
def n_slack_api_json():
    body = (f'{{"ok": true, "channel": "{slack_cid()}", "ts": "{epoch()}.{d(6)}", "message": {{"type": "message", '
            f'"user": "{slack_uid()}", "team": "{slack_tid()}", "bot_id": "B0{rs(8, UPNUM)}", "text": "deploy finished"}}}}')
    return T('chat.postMessage response, but nothing shows in the channel\n') + fence(T(body), 'json')


@neg
def n_aws_describe():
    acct = aws_account()
    body = (f'{{\n  "Reservations": [{{\n    "OwnerId": "{acct}",\n    "Instances": [{{\n      "InstanceId": "i-{rs(17, HEX)}",\n'
            f'      "ImageId": "ami-{rs(17, HEX)}",\n      "InstanceType": "m6i.large",\n      "Placement": {{"AvailabilityZone": "{ch(REGIONS[:4])}a"}},\n'
            f'      "IamInstanceProfile": {{"Arn": "arn:aws:iam::{acct}:instance-profile/app"}},\n      "State": {{"Name": "running"}}\n    }}]\n  }}]\n}}')
    return T(ch(['the instance is in the right account afaict', 'describe-instances output:']) + '\n') + fence(T(body), 'json')


@neg
def n_authorized_keys():
    keys = [ssh_pub() for _ in range(ri(1, 3))]
    return T(ch(['can you add my public key to the bastion?', 'authorized_keys on the box right now:',
                 'new CI key, public part only']) + '\n') + fence(T('\n'.join(keys)))


@neg
def n_cert_pem():
    return T(ch(['the intermediate cert the CA sent, does the chain look right?', 'cert from the LB (public, fine to share):']) +
             '\n') + fence(T(pem_cert()))


@neg
def n_public_key_pem():
    return T(ch(['JWT verification public key for the partner:', 'here\'s our webhook signing public key']) + '\n') + \
        fence(T(pem_public()))


@neg
def n_openssl_text():
    host = ch(['api', 'shop', 'auth', 'status']) + '.' + ch(WORK_DOMAINS)
    body = (f'Certificate:\n    Data:\n        Version: 3 (0x2)\n        Serial Number:\n            {":".join(rs(2, HEX) for _ in range(16))}\n'
            f'        Signature Algorithm: sha256WithRSAEncryption\n        Issuer: C=US, O=Let\'s Encrypt, CN=R3\n        Validity\n'
            f'            Not Before: May  1 00:00:00 2024 GMT\n            Not After : Jul 30 23:59:59 2024 GMT\n        Subject: CN={host}\n'
            f'SHA256 Fingerprint={":".join(rs(2, HEX).upper() for _ in range(32))}')
    return T('cert expires end of july, renewal job is failing\n') + fence(T(body))


@neg
def n_netstat():
    body = ('Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name\n'
            'tcp        0      0 127.0.0.1:5432          0.0.0.0:*               LISTEN      812/postgres\n'
            'tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN      601/sshd\n'
            f'tcp        0      0 127.0.0.1:{ri(6000, 9999)}          0.0.0.0:*               LISTEN      {ri(900, 4000)}/node\n'
            'tcp6       0      0 :::80                   :::*                    LISTEN      733/nginx\n'
            'tcp6       0      0 ::1:631                 :::*                    LISTEN      540/cupsd')
    return T(ch(['netstat on the box, postgres only listens locally so that\'s why', 'ports in use:']) + '\n') + fence(T(body))


@neg
def n_versions():
    lines = [f'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{ri(118, 126)}.0.{ri(5000, 6500)}.{ri(10, 200)} Safari/537.36',
             f'OS: Windows 11 build 10.0.{ri(19041, 22631)}.{ri(1000, 3900)}', f'agent version {version4()}',
             f'firmware {ri(1, 4)}.{ri(0, 9)}.{ri(0, 9)}.{ri(0, 99)}', f'electron {ri(25, 30)}.{ri(0, 9)}.{ri(0, 9)}',
             f'kernel 5.15.0-{ri(50, 110)}-generic', f'java 17.0.{ri(1, 11)}+{ri(1, 9)}']
    R.shuffle(lines)
    return T(ch(['env info from the bug report:', 'reporter\'s setup', 'only repros on this version combo']) + '\n') + \
        fence(T('\n'.join(lines[:ri(3, 6)])))


@neg
def n_jira_list():
    lines = [f'{ticket()}  {ch(["Refund stuck in pending", "Duplicate webhook delivery", "CSV export timeout", "Address autocomplete wrong", "2FA SMS delayed"])}  '
             f'order {order_id()}  ref {luhn_invalid(16)}' for _ in range(ri(3, 5))]
    return T(ch(['open tickets for this sprint:', 'these are all the same root cause I think:']) + '\n') + fence(T('\n'.join(lines)))


@neg
def n_curl_placeholder():
    body = ch(['curl https://api.example.com/v1/items -H "Authorization: Bearer $API_TOKEN"',
               'curl -H "Authorization: Bearer <your-token-here>" https://api.example.com/v1/me',
               'curl -u "$JIRA_USER:$JIRA_TOKEN" https://acme.atlassian.net/rest/api/3/myself',
               'curl -H "X-API-Key: YOUR_API_KEY" https://api.example.com/v2/search?q=test',
               'curl -H "DD-API-KEY: ${DD_API_KEY}" https://api.datadoghq.eu/api/v1/validate'])
    return T(ch(['docs example for the README:', 'use this, token from `op read`:', 'the pattern for calling it:']) + '\n') + \
        fence(T(body), 'bash')


@neg
def n_aws_doc_keys():
    body = ('[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n'
            f'region = {ch(REGIONS[:6])}')
    return T(ch(['from the AWS docs, the onboarding guide should show this format', 'example creds file for the wiki (docs keys)']) +
             '\n') + fence(T(body))


@neg
def n_slack_token_placeholder():
    body = ('export SLACK_BOT_TOKEN=xoxb-your-token\nexport SLACK_APP_TOKEN=xapp-your-app-token\n'
            'export SLACK_SIGNING_SECRET=your-signing-secret\npython app.py')
    return T('README quickstart:\n') + fence(T(body), 'bash')


@neg
def n_redacted_config():
    body = ch(['database:\n  host: db.internal\n  user: app\n  password: "<redacted>"\nstripe:\n  secret_key: "********"\n'
               '  publishable_key: pk_live_' + rs(24) + '\n',
               'DB_PASSWORD=********\nAPI_KEY=<redacted>\nSESSION_SECRET=[REDACTED]\nPORT=8080\n',
               '{"api_key": "****************", "password": "<redacted>", "endpoint": "https://api.' + ch(WORK_DOMAINS) +
               '", "timeout": 30}'])
    return T(ch(['config with secrets scrubbed, the structure is what matters:', 'redacted version of the prod config']) + '\n') + \
        fence(T(body.strip()))


@neg
def n_git_remote_ssh():
    repo = ch(APP_NAMES)
    body = (f'$ git remote -v\norigin\tgit@github.com:acme/{repo}.git (fetch)\norigin\tgit@github.com:acme/{repo}.git (push)\n'
            f'upstream\tgit@gitlab.com:platform/{repo}.git (fetch)')
    return T('remotes look right to me, still get permission denied (publickey)\n') + fence(T(body))


@neg
def n_ssh_hosts():
    h = ch(HOSTS)
    return T(ch([f'can you try `ssh ubuntu@{h}` and then `sudo journalctl -u app -n 200`?',
                 f'I\'m on ec2-user@{h} now, disk is 96% full',
                 f'`scp dump.sql deploy@{h}:/tmp/` keeps timing out',
                 f'logged in as root@{h} via the console, sshd was dead']))


@neg
def n_bic_list():
    lines = [f'{ch(["DE", "FR", "NL", "GB", "ES", "IT", "PL"])}  {ch(BICS)}  cutoff {ri(12, 16)}:00 CET  fee EUR {ri(0, 15)}.00' for _ in range(ri(3, 5))]
    return T('correspondent banks config, only the BICs changed\n') + fence(T('country  bic  cutoff  fee\n' + '\n'.join(lines)))


@neg
def n_dates_deadlines():
    body = (f'{{"project": "{ch(["atlas", "falcon", "rollout-q3", "gdpr-cleanup"])}", "created_at": "{ts()}", "updated_at": "{ts()}", '
            f'"start_date": "{recent_date()}", "deadline": "{recent_date()}", "contract_expiry": "{recent_date()}", "owner_team": "platform"}}')
    return T(ch(['dates look off by one in the UI, raw:', 'is the deadline stored in UTC?']) + '\n') + fence(T(body), 'json')


@neg
def n_product_names():
    prod = R.sample(PRODUCTS, 3)
    who = ch(LONE_GIVEN)
    return T(f'{prod[0]} job failed again, {prod[1]} looks healthy though. thx {who} for restarting {prod[2]} ') + \
        RAW(f'<@{slack_uid()}>') + T(' can you take a look at the ') + T(prod[0]) + T(' agent?')


@neg
def n_company_names():
    a, b = R.sample(COMPANIES, 2)
    body = (f'account_name,segment,arr_usd,renewal\n"{a}",enterprise,{ri(100, 900)}000,{recent_date()}\n'
            f'"{b}",enterprise,{ri(100, 900)}000,{recent_date()}\nAcme Ltd,smb,{ri(5, 90)}000,{recent_date()}')
    return T('top accounts for the QBR deck\n') + fence(T(body))


@neg
def n_regions_offices():
    return T(ch([f'failover from {ch(REGIONS)} to {ch(REGIONS)} worked, {ch(OFFICES)} saw ~40s of errors',
                 f'latency from {ch(OFFICES)} to {ch(REGIONS)} is 180ms, can we add a replica in {ch(REGIONS)}?',
                 f'the Frankfurt datacenter maintenance is on {recent_date("long")}, {ch(OFFICES)} will be on the backup link']))


@neg
def n_prometheus_metrics():
    lines = [f'http_requests_total{{service="{ch(APP_NAMES)}",code="{ch(["200", "500", "429"])}",instance="{ch(HOSTS)}:9090"}} {ri(100, 999999)}'
             for _ in range(ri(3, 5))] + [f'process_resident_memory_bytes {ri(10 ** 7, 10 ** 9)}',
                                          f'go_info{{version="go1.{ri(19, 22)}.{ri(0, 9)}"}} 1']
    return T('metrics endpoint dump:\n') + fence(T('\n'.join(lines)))


@neg
def n_terraform_plan_sensitive():
    body = ('  # aws_db_instance.main will be updated in-place\n  ~ resource "aws_db_instance" "main" {\n'
            '        id         = "main"\n      ~ password   = (sensitive value)\n      ~ engine_version = "15.4" -> "15.6"\n'
            '        tags       = {\n            "team" = "data"\n        }\n    }\n\nPlan: 0 to add, 1 to change, 0 to destroy.')
    return T('plan for the rotation PR, pw is marked sensitive so it\'s fine to share\n') + fence(T(body))


@neg
def n_helm_existing_secret():
    body = (f'postgresql:\n  auth:\n    existingSecret: pg-credentials\n    secretKeys:\n      adminPasswordKey: postgres-password\n'
            f'      userPasswordKey: password\nimage:\n  tag: {version()}\nservice:\n  port: {port()}')
    return T('values after moving creds to the secret\n') + fence(T(body), 'yaml')


@neg
def n_sha_sums():
    files = ['release-linux-amd64.tar.gz', 'release-darwin-arm64.tar.gz', 'release-windows-amd64.zip', 'checksums.txt.sig']
    lines = [f'{sha256()}  {f}' for f in R.sample(files, ri(2, 4))]
    return T('sha256sums for the release, verify before installing\n') + fence(T('\n'.join(lines)))


@neg
def n_data_uri_base64():
    blob = b64(b'\x89PNG\r\n\x1a\n' + rbytes(ri(60, 150)))
    cfg = b64(json.dumps({'theme': 'dark', 'lang': 'en', 'beta': True}).encode())
    return T(ch(['the avatar placeholder is inlined as ', 'email template embeds '])) + T('`data:image/png;base64,' + blob + '`') + \
        T(' and the prefs cookie is just base64 json: ') + T('`' + cfg + '`')


@neg
def n_kafka_lag():
    lines = ['GROUP           TOPIC           PARTITION  CURRENT-OFFSET  LOG-END-OFFSET  LAG']
    g = ch(['orders-consumer', 'email-sender', 'ledger-sync'])
    for i in range(ri(3, 5)):
        cur = ri(10 ** 5, 10 ** 7)
        lines.append(f'{g:<16}{ch(["orders.v1", "payments.events"]):<16}{i:<11}{cur:<16}{cur + ri(0, 50000):<16}{ri(0, 50000)}')
    return T('lag keeps growing on partition 2\n') + fence(T('\n'.join(lines)))


@neg
def n_top_output():
    body = (f'top - {ri(10, 23)}:{ri(10, 59)}:{ri(10, 59)} up {ri(2, 200)} days,  load average: {ri(1, 9)}.{d(2)}, {ri(1, 9)}.{d(2)}, {ri(1, 9)}.{d(2)}\n'
            f'MiB Mem :  {ri(8000, 64000)}.0 total,    {ri(100, 900)}.3 free\n  PID USER      PR  NI    VIRT    RES  %CPU  %MEM COMMAND\n'
            f' {ri(1000, 9999)} app       20   0 {ri(1, 9)}.{d(1)}g {ri(1, 9)}.{d(1)}g  {ri(90, 400)}.0  {ri(10, 80)}.2 java\n'
            f' {ri(1000, 9999)} postgres  20   0  {ri(100, 999)}m  {ri(100, 999)}m   {ri(1, 40)}.1   {ri(1, 9)}.4 postgres')
    return T('box is pegged:\n') + fence(T(body))


@neg
def n_ddl_schema():
    body = ('CREATE TABLE customers (\n  id BIGSERIAL PRIMARY KEY,\n  full_name TEXT NOT NULL,\n  email CITEXT UNIQUE,\n'
            '  phone TEXT,\n  ssn_encrypted BYTEA,\n  date_of_birth DATE,\n  passport_number TEXT,\n  iban TEXT,\n'
            '  created_at TIMESTAMPTZ DEFAULT now()\n);\nCREATE INDEX ON customers (created_at);')
    return T(ch(['proposed schema, should ssn be in a separate table?', 'DDL for review:']) + '\n') + fence(T(body), 'sql')


@neg
def n_masked_rows():
    rows = ['id,name,ssn,card,email']
    for _ in range(ri(2, 4)):
        g = ch(LONE_GIVEN)
        rows.append(f'{ri(100, 9999)},{g[0].upper()}*** {ch("ABCDEFGHKLMNOPRSTW")}.,***-**-{d(4)},**** **** **** {d(4)},{g[0]}***@***')
    return T('masked export for the vendor, checks out?\n') + fence(T('\n'.join(rows)))


@neg
def n_http_status_latency():
    lines = [f'{ch(["GET", "POST"])} /api/v{ri(1, 3)}/{ch(["orders", "users/me", "cart", "search"])}  p50={ri(10, 90)}ms p99={ri(200, 3000)}ms '
             f'5xx={ri(0, 9)}.{d(2)}% rps={ri(10, 5000)}' for _ in range(ri(3, 5))]
    return T('latency after the deploy:\n') + fence(T('\n'.join(lines)))


@neg
def n_crontab():
    body = (f'# m h dom mon dow command\n{ri(0, 59)} {ri(0, 5)} * * * /opt/app/bin/backup.sh >> /var/log/backup.log 2>&1\n'
            f'*/15 * * * * /usr/bin/curl -fsS http://127.0.0.1:{ri(3000, 9000)}/internal/sweep > /dev/null\n'
            f'0 9 * * 1 /opt/app/bin/weekly-report --to-channel {slack_cid()}')
    return T('crontab on the worker, backup ran twice yesterday?\n') + fence(T(body))


@neg
def n_changelog():
    v1 = version()
    body = (f'## [{v1}] - {recent_date()}\n### Fixed\n- Refund webhook retried with exponential backoff (#{ri(100, 4000)})\n'
            f'- IPv6 parsing in the allowlist (#{ri(100, 4000)})\n### Changed\n- Bump node to 20.{ri(10, 15)}.{ri(0, 3)}')
    return T('changelog entry for the release notes:\n') + fence(T(body), 'md')


@neg
def n_wg_public_only():
    body = (f'[Interface]\nPrivateKey = <paste from 1password>\nAddress = <assigned>\n\n[Peer]\nPublicKey = {wg_key()}\n'
            'AllowedIPs = 0.0.0.0/0, ::/0\nEndpoint = vpn.example.com:51820')
    return T('template for the new joiners, they fill in their own private key\n') + fence(T(body), 'ini')


@neg
def n_ssh_fingerprint():
    return T(ch(['host key changed warning, the new fingerprint should be ', 'verify the bastion fingerprint is '])) + \
        T('`SHA256:' + rs(43, B64).rstrip('+/') + '`') + T(' (ED25519) before you accept')


@neg
def n_gpg_public():
    body = '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n' + '\n'.join(pem_body('mQINBGX', 600)) + '\n=' + rs(4, B64) + \
        '\n-----END PGP PUBLIC KEY BLOCK-----'
    return T('release signing public key, import it to verify tags\n') + fence(T(body))


@neg
def n_npm_integrity():
    body = (f'"node_modules/{ch(["lodash", "axios", "zod", "express"])}": {{\n  "version": "{version()}",\n'
            f'  "resolved": "https://registry.npmjs.org/pkg/-/pkg-{version()}.tgz",\n  "integrity": "sha512-{b64(rbytes(64))}",\n'
            '  "license": "MIT"\n}')
    return T('lockfile diff, did the integrity change legitimately?\n') + fence(T(body), 'json')


@neg
def n_go_sum():
    mods = ['github.com/google/uuid', 'golang.org/x/crypto', 'github.com/stretchr/testify', 'go.uber.org/zap']
    lines = [f'{m} v{version()} h1:{b64(rbytes(32))}' for m in R.sample(mods, 3)]
    return T('go.sum conflict after rebase:\n') + fence(T('\n'.join(lines)))


@neg
def n_azurite():
    body = ('UseDevelopmentStorage=true\n# or explicitly, the well-known Azurite emulator account from the docs:\n'
            'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;'
            'BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;')
    return T('for local tests use the emulator, not the real account\n') + fence(T(body))


@neg
def n_pg_url_no_password():
    return T(ch(['local dev uses ', 'tests run against ', 'default for docker dev: '])) + \
        T(ch(['`postgres://app@localhost:5432/app_dev`', '`postgresql://postgres:${PGPASSWORD}@127.0.0.1:5432/test`',
              '`mysql://root@127.0.0.1:3306/shop_test`', '`redis://localhost:6379/0`'])) + T(', prod creds come from the secret store')


@neg
def n_first_names_chat():
    a, b = R.sample(LONE_GIVEN, 2)
    tt = hhmm_seq(3)
    lines = [f'[{tt[0]}] {a}: deploy is green', f'[{tt[1]}] {b}: nice, thx {a}! closing {ticket()}',
             f'[{tt[2]}] {a}: ping me if the {ch(PRODUCTS)} alerts come back']
    return T('from the incident channel:\n') + fence(T('\n'.join(lines)))


@neg
def n_empty_form():
    body = ('Applicant: N/A\nDate of birth: (not provided)\nSSN: —\nPhone: \nEmail: pending\nAddress: TBD\n'
            f'Submitted: {ts_plain()}\nStatus: incomplete')
    return T('why do we even accept submissions like this?\n') + fence(T(body))


@neg
def n_order_confirmation():
    body = (f'Order {order_id()} confirmed\nItems: {ri(1, 5)}\nSubtotal: ${ri(10, 500)}.{d(2)}\nShipping: UPS Ground, tracking 1Z{rs(6, UPNUM)}{d(10)}\n'
            f'Estimated delivery: {recent_date("long")}\nPaid with: Visa ending {d(4)}')
    return T(ch(['customer says they got charged twice, both confirmations look like this', 'order email template render:']) + '\n') + \
        fence(T(body))


@neg
def n_healthcheck_json():
    body = (f'{{"status": "degraded", "version": "{version()}", "commit": "{git_sha(12)}", "uptime_s": {ri(100, 10 ** 6)}, '
            f'"checks": {{"postgres": {{"ok": true, "latency_ms": {ri(1, 40)}}}, "redis": {{"ok": false, "error": "i/o timeout"}}, '
            f'"s3": {{"ok": true, "bucket": "{ch(APP_NAMES)}-uploads"}}}}}}')
    return T('/healthz on prod:\n') + fence(T(body), 'json')


@neg
def n_ci_output():
    body = (f'Run #{ri(1000, 9999)} on {ch(["main", "release/2.x"])} @ {git_sha(8)}\n  ✓ lint ({ri(10, 60)}s)\n  ✓ unit ({ri(1, 9)}m {ri(0, 59)}s)\n'
            f'  ✗ e2e ({ri(1, 9)}m {ri(0, 59)}s) - 2 failed, {ri(100, 400)} passed\n  - build skipped\nArtifacts: build-{git_sha(7)}.tar.zst ({ri(10, 99)} MB)')
    return T('CI run is red, e2e flake again?\n') + fence(T(body))


@neg
def n_pip_hashes():
    body = (f'requests=={ri(2, 2)}.{ri(28, 32)}.{ri(0, 3)} \\\n    --hash=sha256:{sha256()}\nurllib3==2.{ri(0, 2)}.{ri(0, 9)} \\\n'
            f'    --hash=sha256:{sha256()}')
    return T('requirements with hashes, pip refuses to install:\n') + fence(T(body))


@neg
def n_feature_flags_json():
    flags = ', '.join(f'"{ch(["new_checkout", "fast_refunds", "ai_summaries", "dark_mode", "bulk_export"])}_{i}": {{"id": "{uuid4()}", "rollout": {ri(0, 100)}}}'
                      for i in range(ri(2, 4)))
    return T('flag config from launchdarkly export:\n') + fence(T('{' + flags + '}'), 'json')


@neg
def n_ssn_like_ids():
    a = f'9{d(2)}-{ri(10, 99)}-{d(4)}'
    b = f'{d(3)}-{d(2)}-{d(3)}'
    c = f'000-{ri(10, 99)}-{d(4)}'
    return T(ch([f'case ref {a} and SKU {b} are mixed up in the report', f'part numbers look like {b}, don\'t confuse with case ids like {a}',
                 f'test fixture uses {c} and {a} on purpose since they can never be real']))


@neg
def n_luhn_invalid_ids():
    ids = [luhn_invalid(16) for _ in range(ri(2, 4))]
    return T('gift card batch ids that failed activation (these are internal ids, not PANs):\n') + \
        fence(T('\n'.join(f'{x}  status=inactive  value={ri(10, 200)}.00' for x in ids)))


@neg
def n_meeting_ids_ports():
    return T(ch([f'bridge is meeting id {ri(800, 999)} {d(4)} {d(4)}, starts {hhmm()} UTC, service listens on port {port()}',
                 f'order {ri(10 ** 9, 10 ** 10)} and ticket #{ri(10 ** 5, 10 ** 6)} are the same incident, logged at {ts()}',
                 f'timestamps {epoch()} and {epoch()} are 40 min apart, queue on :{port()} was backed up']))


@neg
def n_aws_arn():
    acct = aws_account()
    body = (f'{{\n  "Version": "2012-10-17",\n  "Statement": [{{\n    "Effect": "Allow",\n    "Principal": {{"AWS": "arn:aws:iam::{acct}:role/ci-deployer"}},\n'
            f'    "Action": "sts:AssumeRole",\n    "Condition": {{"StringEquals": {{"sts:ExternalId": "{uuid4()}"}}}}\n  }}]\n}}')
    return T(f'trust policy for account {aws_account()}, does this look right?\n') + fence(T(body), 'json')


@neg
def n_twilio_sid_prose():
    return T(f'the subaccount is {twilio_sid("AC")} (just the SID, auth token is in vault), messaging service {twilio_sid("MG")}')


@neg
def n_loopback_ifconfig():
    body = ('lo: flags=73<UP,LOOPBACK,RUNNING>  mtu 65536\n        inet 127.0.0.1  netmask 255.0.0.0\n        inet6 ::1  prefixlen 128  scopeid 0x10<host>\n'
            f'        RX packets {ri(1000, 99999)}  bytes {ri(10 ** 5, 10 ** 8)}\n\n# resolv.conf\nnameserver 127.0.0.53\noptions edns0 trust-ad')
    return T('container networking looks normal:\n') + fence(T(body))


@neg
def n_semver_matrix():
    lines = [f'| {ch(["python", "node", "postgres", "redis", "kafka"])} | {version()} | {version()} | {ch(["ok", "deprecated", "EOL"])} |' for _ in range(4)]
    return T('compat matrix for the upgrade:\n') + fence(T('| component | current | target | status |\n|---|---|---|---|\n' + '\n'.join(lines)))


@neg
def n_dockerfile():
    body = (f'FROM python:3.{ri(10, 12)}-slim\nARG PIP_INDEX_URL\nENV PORT={port()} PYTHONUNBUFFERED=1\nWORKDIR /app\nCOPY requirements.txt .\n'
            'RUN --mount=type=secret,id=pip_token pip install -r requirements.txt\nCOPY . .\nEXPOSE 8080\n'
            'CMD ["gunicorn", "-b", "0.0.0.0:8080", "app:app"]')
    return T('dockerfile review pls, secret mount instead of build arg\n') + fence(T(body), 'dockerfile')


@neg
def n_vault_policy():
    body = ('path "secret/data/payments/*" {\n  capabilities = ["read", "list"]\n}\n\npath "database/creds/readonly" {\n'
            '  capabilities = ["read"]\n}')
    return T('policy for the new role:\n') + fence(T(body), 'hcl')


@neg
def n_sealed_secret():
    body = (f'apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: {ch(APP_NAMES)}-creds\nspec:\n  encryptedData:\n'
            f'    password: AgB{rs(300, B64)}==\n  template:\n    type: Opaque')
    return T('sealed secret is safe to commit, only the controller can decrypt\n') + fence(T(body), 'yaml')


@neg
def n_k8s_secret_placeholder():
    body = ('apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-creds\ntype: Opaque\nstringData:\n  username: <username>\n'
            '  password: <password>\n  api-key: "{{ .Values.apiKey }}"')
    return T('template in the chart, values injected at deploy time\n') + fence(T(body), 'yaml')


@neg
def n_openapi_spec():
    body = ('components:\n  securitySchemes:\n    ApiKeyAuth:\n      type: apiKey\n      in: header\n      name: X-API-Key\n'
            '    BearerAuth:\n      type: http\n      scheme: bearer\n      bearerFormat: JWT\n  examples:\n    auth:\n'
            '      value: "Bearer YOUR_ACCESS_TOKEN"')
    return T('spec snippet for the partner docs:\n') + fence(T(body), 'yaml')


@neg
def n_error_codes():
    lines = [f'E{ri(1000, 9999)}  {ch(["card_declined", "insufficient_funds", "expired_card", "incorrect_cvc", "processing_error"])}  count={ri(1, 900)}'
             for _ in range(ri(3, 5))]
    return T('decline reasons last 24h:\n') + fence(T('\n'.join(lines)))


@neg
def n_grafana_dashboard():
    body = (f'{{"dashboard": {{"uid": "{rs(9, LOWNUM)}", "title": "{ch(APP_NAMES)} overview", "panels": [{{"id": 2, "type": "timeseries", '
            f'"datasource": {{"type": "prometheus", "uid": "{rs(9, ALNUM)}"}}, "targets": [{{"expr": "rate(http_requests_total[5m])"}}]}}]}}, '
            f'"folderUid": "{rs(9, LOWNUM)}", "overwrite": true}}')
    return T('dashboard json for the import:\n') + fence(T(body), 'json')


@neg
def n_masked_tokens():
    return T(ch([f'rotated: old key `sk_live_…{rs(4)}` revoked, new one is in vault under payments/stripe',
                 f'the log shows `token=xoxb-****-****` so masking works',
                 f'audit log: key `AKIA************{rs(4, UPNUM)}` last used {recent_date()} from {ch(REGIONS)}',
                 f'leaked key scanner matched `ghp_************************************` in a test fixture, false alarm']))


@neg
def n_ticket_timestamps():
    body = (f'ticket: {ticket()}\nopened: {ts()}\nfirst_response: {ts()}\nsla_deadline: {recent_date()}\nseverity: S{ri(1, 4)}\n'
            f'assignee: {slack_uid()}\ncomponents: [{ch(PRODUCTS)}, billing]')
    return T('SLA breach report row:\n') + fence(T(body), 'yaml')


@neg
def n_project_codenames():
    return T(ch([f'Project Hudson and Project Cassandra both ship {recent_date("long")}, Jenkins pipelines are ready for both',
                 f'the Athena migration is blocked on {ch(PRODUCTS)}, ask {ch(LONE_GIVEN)} for the runbook',
                 f'Ada (the chatbot) now answers refund questions; escalation goes to the {ch(["Phoenix", "Orion", "Hermes"])} queue']))


@neg
def n_sops_encrypted():
    body = (f'db_password: ENC[AES256_GCM,data:{rs(24, B64)},iv:{rs(43, B64)}=,tag:{rs(22, B64)}==,type:str]\n'
            f'sops:\n    age:\n        - recipient: age1{rs(58, "qpzry9x8gf2tvdw0s3jn54khce6mua7l")}\n'
            f'    lastmodified: "{ts()}"\n    mac: ENC[AES256_GCM,data:{rs(60, B64)},type:str]\n    version: 3.8.1')
    return T('sops file is encrypted, safe in git\n') + fence(T(body), 'yaml')


@neg
def n_csv_header_only():
    return T(ch(['the export came back empty, just the header: ', 'template for the import: '])) + \
        T('`name,email,phone,ssn,dob,dl_number,passport,account,routing,address`') + T(' — fill one row per customer')


@neg
def n_curl_localhost():
    body = (f'curl -s http://127.0.0.1:{ri(3000, 9000)}/metrics | grep http_requests\ncurl -s http://[::1]:8080/healthz\n'
            f'curl -X POST http://localhost:{ri(3000, 9000)}/admin/cache/flush -H "X-Admin-Token: $ADMIN_TOKEN"')
    return T('works locally:\n') + fence(T(body), 'bash')


@neg
def n_stripe_pk_prose():
    return T(f'frontend uses the publishable key `pk_live_{rs(24)}` which is fine to ship; customer is `{stripe_id("cus")}`, '
             f'charge `{stripe_id("ch")}`, refund `{stripe_id("re")}`')


@neg
def n_jwt_structure_doc():
    return T('a JWT is `base64url(header).base64url(payload).signature`; for the header we expect `{"alg":"RS256","typ":"JWT","kid":"<key id>"}` '
             'and the verifier fetches keys from `/.well-known/jwks.json`')


@neg
def n_netmask_cidr():
    body = ('subnet mask: 255.255.255.0\nwildcard:    0.0.0.255\ndefault route: 0.0.0.0/0\nipv6 unspecified: ::\n'
            'loopback: 127.0.0.1/8, ::1/128')
    return T('cheat sheet for the networking onboarding doc\n') + fence(T(body))


@neg
def n_uuid_list():
    lines = [f'{uuid4()}  {ch(["queued", "failed", "done"])}  {ts()}' for _ in range(ri(3, 6))]
    return T('job ids that never finished:\n') + fence(T('\n'.join(lines)))


@neg
def n_ticket_with_slack_mentions():
    return T('assigning ') + RAW(f'<@{slack_uid()}>') + T(' and ') + RAW(f'<@{slack_uid()}|{ch(LONE_GIVEN)}>') + \
        T(f' to {ticket()}, see ') + RAW(f'<#{slack_cid()}|incidents>') + T(f' — rollback of {git_sha(10)} by {hhmm()} UTC')


@neg
def n_price_table():
    lines = [f'{ch(["starter", "pro", "business", "enterprise"])}  ${ri(0, 999)}/mo  seats={ri(1, 500)}  sku={d(3)}-{d(2)}-{d(3)}' for _ in range(3)]
    return T('pricing config to double check:\n') + fence(T('\n'.join(lines)))


@neg
def n_aws_account_table():
    lines = [f'{ch(["prod", "staging", "sandbox", "security", "logs"])}  {aws_account()}  {ch(REGIONS[:6])}  OU=workloads' for _ in range(4)]
    return T('account map for the SSO permission sets:\n') + fence(T('name  account_id  region  ou\n' + '\n'.join(lines)))


@neg
def n_hashes_in_log():
    body = (f'{ts()} INFO  upload complete key=uploads/{uuid4()}.pdf etag="{rs(32, HEX)}" sha256={sha256()}\n'
            f'{ts()} INFO  password hash upgraded algo=argon2id user_id={ri(1000, 99999)}\n'
            f'{ts()} DEBUG md5={rs(32, HEX)} size={ri(1000, 10 ** 7)}')
    return T('upload pipeline logs (etag is the md5):\n') + fence(T(body))


@neg
def n_ssh_rsa_in_yaml():
    body = (f'users:\n  - name: deploy\n    groups: sudo\n    ssh_authorized_keys:\n      - {ssh_pub("deploy@ci")}\n'
            '    shell: /bin/bash')
    return T('cloud-init user data:\n') + fence(T(body), 'yaml')


@neg
def n_expiry_cvv_fields():
    body = (f'{{"card": {{"last4": "{d(4)}", "brand": "amex", "exp": "{ri(1, 12):02d}/{ri(25, 31)}", "cvv_provided": true, '
            f'"cvc_check": "unavailable", "funding": "credit", "country": "US"}}, "three_d_secure": "attempted"}}')
    return T('is cvc_check unavailable a decline reason?\n') + fence(T(body), 'json')


@neg
def n_jira_jql():
    return T('use this filter: ') + T(f'`project = SUP AND created >= "{recent_date()}" AND labels in (refund, chargeback) ORDER BY priority DESC`')


@neg
def n_cert_chain_k8s():
    cert = b64(pem_cert().encode())[:400]
    body = (f'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ca-bundle\ndata:\n  ca.crt: |\n    -----BEGIN CERTIFICATE-----\n'
            f'    {rs(64, B64)}\n    {rs(64, B64)}\n    ...\n    -----END CERTIFICATE-----\n  caBundle: {cert}...')
    return T('CA bundle for the webhook (public certs only)\n') + fence(T(body), 'yaml')


@neg
def n_rate_limit_headers():
    body = (f'HTTP/1.1 429 Too Many Requests\nx-ratelimit-limit: {ri(60, 5000)}\nx-ratelimit-remaining: 0\nx-ratelimit-reset: {epoch()}\n'
            f'retry-after: {ri(1, 60)}\nx-request-id: {uuid4()}\ncf-ray: {rs(16, HEX)}-{ch(["FRA", "LHR", "IAD", "SIN"])}')
    return T('partner API throttles us at 9am every day:\n') + fence(T(body))


@neg
def n_otel_span():
    body = (f'{{"traceId": "{trace_id()}", "spanId": "{span_id()}", "parentSpanId": "{span_id()}", "name": "POST /checkout", '
            f'"kind": "SPAN_KIND_SERVER", "startTimeUnixNano": "{epoch()}000000000", "attributes": [{{"key": "http.status_code", "value": {{"intValue": 500}}}}, '
            f'{{"key": "service.version", "value": {{"stringValue": "{version4()}"}}}}]}}')
    return T('span from the collector:\n') + fence(T(body), 'json')


# ==================================================================================
# driver
# ==================================================================================
N_TOTAL = 500
N_CLEAN = 250


def build():
    n_pos = N_TOTAL - N_CLEAN
    plan = [('pos', f) for f in POS] + [('neg', f) for f in NEG]
    assert len(POS) <= n_pos and len(NEG) <= N_CLEAN
    # templates carrying the rarer labels (cards, IBANs, ID documents) are drawn more often
    rare = {'t_csv_kyc', 't_background_csv', 't_dl_chat_prose', 't_idv_result', 't_lease_application',
            't_form_applicant', 't_passport_csv', 't_passport_json', 't_booking_json', 't_form_traveller',
            't_json_profile', 't_form_beneficiary', 't_refund_csv_iban', 't_iban_json_payout', 't_iban_prose',
            't_sepa_xml', 't_wire_instructions', 't_card_csv_migration', 't_form_cardholder', 't_qa_test_cards',
            't_chargeback_json', 't_payment_error_log', 't_csv_employees_ssn', 't_ssn_call_notes'}
    weights = [3 if f.__name__ in rare else 1 for f in POS]
    plan += [('pos', f) for f in R.choices(POS, weights=weights, k=n_pos - len(POS))]
    plan += [('neg', R.choice(NEG)) for _ in range(N_CLEAN - len(NEG))]
    R.shuffle(plan)
    out = []
    for i, (kind, f) in enumerate(plan, 1):
        segs = f()
        escape = R.random() < 0.85
        text, spans = render(segs, escape)
        if kind == 'pos':
            assert spans, f.__name__
        else:
            assert not spans, f.__name__
        for s in spans:
            val = text[s['start']:s['end']]
            assert val and val == val.strip(), (f.__name__, val)
        out.append({'id': f'p2-{i:05d}', 'text': text, 'spans': spans, '_template': f.__name__})
    return out


def main():
    rows = build()
    with open('messages.jsonl', 'w', encoding='utf-8') as fh:
        for r in rows:
            r = {k: r[k] for k in ('id', 'text', 'spans')}
            fh.write(json.dumps(r, ensure_ascii=False) + '\n')
    with open('template_map.tsv', 'w', encoding='utf-8') as fh:  # for auditing only
        for r in rows:
            fh.write(f"{r['id']}\t{r['_template']}\n")
    print(f'wrote {len(rows)} rows; {len(POS)} positive + {len(NEG)} clean templates')


if __name__ == '__main__':
    main()
