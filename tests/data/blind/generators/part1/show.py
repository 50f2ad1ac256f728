import json, sys, random
rows=[json.loads(l) for l in open('/work/blind/part1/messages.jsonl')]
sel = sys.argv[1] if len(sys.argv)>1 else 'all'
r = random.Random(int(sys.argv[2]) if len(sys.argv)>2 else 0)
if sel=='pos': rows=[x for x in rows if x['spans']]
elif sel=='neg': rows=[x for x in rows if not x['spans']]
n = int(sys.argv[3]) if len(sys.argv)>3 else len(rows)
rows = r.sample(rows, min(n,len(rows)))
for x in rows:
    print('=====', x['id'])
    print(x['text'])
    for s in x['spans']:
        print('   ->', s['label'], repr(x['text'][s['start']:s['end']]))
