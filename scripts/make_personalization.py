"""Write mipo/tasks/data/personalization.jsonl from the hand-written pools below (run from the repo root).

    .venv/bin/python scripts/make_personalization.py

Deterministic. The JSONL is committed; edit the pools here and re-run rather than editing it by hand.

Each scenario is one constraint (a category) with: `avoid`, terms a response that heeded the user would essentially
never contain; `expect`, terms a tailored response would plausibly contain; and contexts and requests for each
split. The rows of a split are every (context, request) pair of that split. Held-out (test) contexts and requests
are worded differently from the training ones, so a held-out row shares neither its context nor its request with
any training row. Contexts may be shared between scenarios of the same split (one user, several requests).

Matching rule (`mipo.behaviour.mentions`, the metric's own; the data test uses it too): a term matches a text
when it occurs case-insensitively as a whole word or phrase, optionally followed by "s" or "es", with any whitespace between
the words of a multi-word term. The script refuses to write a row where an expect term matches the context or
request, or an avoid term matches the request or context.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from mipo.behaviour import mentions

OUT = Path(__file__).resolve().parents[1] / "mipo" / "tasks" / "data" / "personalization.jsonl"

SCENARIOS: list[dict] = []


def add(category, avoid, expect, train, test):
    """train, test: (contexts, requests); the split's rows are their product."""
    SCENARIOS.append({"category": category, "avoid": avoid, "expect": expect, "train": train, "test": test})


# ------------------------------------------------------------------------------------------------------ diet
add("diet",
    ["chicken", "beef", "pork", "salmon", "tuna", "shrimp", "turkey"],
    ["tofu", "lentil", "chickpea", "bean", "tempeh", "hummus", "edamame"],
    (["I'm vegan and I cook for one.",
      "I stopped eating animal products two years ago, and everything on my plate is plant-based now."],
     ["Suggest a quick dinner I can make tonight.",
      "What could I pack for lunch at work tomorrow?",
      "Give me an idea for a high-protein snack."]),
    (["I don't eat anything that comes from an animal, not even honey.",
      "My whole household went vegan this year."],
     ["Suggest a hearty dish for a cold evening.",
      "What could I bring to a potluck this weekend?"]))

add("diet",
    ["chicken", "beef", "pork", "steak", "lamb", "salmon", "shrimp", "tuna"],
    ["halloumi", "mushroom", "paneer", "cheese", "egg", "lentil", "chickpea", "tofu"],
    (["I'm vegetarian, but dairy is fine for me.",
      "I haven't eaten meat or fish since I was a teenager."],
     ["What should I grill at a summer barbecue?",
      "Suggest a filling for sandwiches this week.",
      "What's a good main course for a dinner party?"]),
    (["Nobody in my house eats meat or fish.",
      "I gave up meat and seafood for ethical reasons."],
     ["Recommend a dish to order at an Indian restaurant.",
      "Suggest a filling breakfast for a lazy Sunday."]))

add("diet",
    ["pasta", "potato", "bagel", "oatmeal", "cereal", "toast", "granola"],
    ["egg", "avocado", "cheese", "salmon", "cauliflower", "zucchini", "spinach", "nut"],
    (["I'm on a keto diet and keep my carbs under 20 grams a day.",
      "I've cut starches and sugar out of my diet almost completely."],
     ["What should I eat for breakfast this week?",
      "Suggest a snack for the afternoon slump.",
      "Give me an idea for a simple weeknight dinner."]),
    (["My eating plan is very low in carbohydrates, around 25 grams a day at most.",
      "I'm doing low-carb for my health and stay away from grains and starchy foods."],
     ["What can I have for lunch at my desk?",
      "Suggest a side dish for roast chicken."]))

add("diet",
    ["jalapeno", "habanero", "sriracha", "cayenne", "vindaloo", "hot sauce", "chili flake", "ghost pepper"],
    ["mild", "korma", "coconut", "creamy", "herb", "butter chicken", "quesadilla", "lemon"],
    (["I can't handle spicy food at all; even black pepper is a lot for me.",
      "My stomach reacts badly to anything with heat in it."],
     ["Recommend a curry I could cook at home.",
      "What should I order at a Mexican restaurant?",
      "Suggest a marinade for grilled chicken."]),
    (["Fiery food gives me terrible heartburn.",
      "I have a very low tolerance for hot, peppery dishes."],
     ["Suggest a dish to order at a Thai restaurant.",
      "What's a good dish to cook for friends on taco night?"]))

# --------------------------------------------------------------------------------------------------- allergy
add("allergy",
    ["almond", "cashew", "walnut", "pecan", "pistachio", "hazelnut", "satay", "pesto"],
    ["sunflower", "pumpkin seed", "seed", "popcorn", "pretzel", "fruit", "crouton", "oat"],
    (["I have a severe tree nut and peanut allergy.",
      "I carry an EpiPen because even a trace of nuts sends me to the hospital."],
     ["What's a good snack to keep in my desk drawer?",
      "Suggest a topping to add crunch to a salad.",
      "What could I snack on during a long road trip?"]),
    (["Nuts of any kind are life-threatening for me.",
      "My allergist says I must stay away from every kind of nut."],
     ["Suggest a crunchy snack for movie night.",
      "What should I put in homemade trail mix?"]))

add("allergy",
    ["couscous", "bulgur", "seitan", "barley", "farro", "orzo", "pita", "bagel"],
    ["rice", "quinoa", "potato", "polenta", "buckwheat", "corn tortilla", "rice noodle", "millet"],
    (["I have coeliac disease, so I can't eat gluten.",
      "Since my celiac diagnosis, a single crumb of wheat makes me ill for days."],
     ["Suggest a quick lunch I can make at home.",
      "What side dish could I make with dinner tonight?",
      "Give me a dinner idea for a busy weeknight."]),
    (["My body can't tolerate gluten in any amount.",
      "I was diagnosed with an autoimmune condition that means strictly no gluten."],
     ["Suggest a side dish to go with grilled fish.",
      "What's a good base for a grain bowl?"]))

add("allergy",
    ["cheesecake", "custard", "tiramisu", "panna cotta", "milkshake", "creme brulee", "cream puff"],
    ["sorbet", "fruit", "dark chocolate", "coconut", "oat milk", "almond milk", "meringue", "popsicle"],
    (["I'm lactose intolerant, and even a splash of milk upsets my stomach.",
      "Dairy doesn't agree with me at all, so I keep it out of my diet."],
     ["Suggest a dessert for a dinner party.",
      "What's a good treat on a hot afternoon?",
      "What sweet thing could I bake for a friend's birthday?"]),
    (["Dairy of any kind gives me painful cramps.",
      "I react badly to lactose."],
     ["Suggest something sweet to bring to a picnic.",
      "What's a nice dessert to end a summer barbecue?"]))

add("allergy",
    ["shrimp", "prawn", "crab", "lobster", "mussel", "clam", "oyster", "scallop"],
    ["salmon", "cod", "tuna", "halibut", "trout", "chicken", "cucumber", "avocado"],
    (["I'm allergic to shellfish.",
      "Crustaceans and mollusks give me hives, so I stay away from them."],
     ["What should I order at a seafood restaurant?",
      "Suggest a filling for tacos tonight.",
      "What should I cook for a beach-themed dinner party?"]),
    (["Any kind of shellfish makes my throat swell up.",
      "I have a serious allergy to seafood with shells."],
     ["Recommend something to try at a sushi bar.",
      "Suggest a pasta dish for date night."]))

add("allergy",
    ["omelet", "omelette", "scrambled egg", "frittata", "quiche", "french toast", "eggs benedict", "shakshuka"],
    ["oatmeal", "smoothie", "yogurt", "granola", "avocado", "fruit", "porridge", "chia"],
    (["I'm allergic to eggs.",
      "My son and I both react to eggs, so I keep them out of the house."],
     ["What's a good breakfast for Sunday morning?",
      "What could I make for brunch with friends this weekend?",
      "Suggest a breakfast I can prepare the night before."]),
    (["Even a little egg in baked goods makes me break out in a rash.",
      "I have an egg allergy that my doctor says is severe."],
     ["Give me a quick breakfast idea before work.",
      "Suggest a hearty morning meal for a day outdoors."]))

add("allergy",
    ["kitten", "rabbit", "guinea pig", "hamster", "chinchilla", "ferret"],
    ["fish", "turtle", "lizard", "gecko", "snake", "aquarium", "tortoise", "goldfish"],
    (["Fur makes my eyes swell and I start sneezing.",
      "Anything furry sets off my allergies badly."],
     ["What pet should I get?",
      "What animal would make a good companion at home for me?",
      "Suggest a pet my kids could help look after."]),
    (["I wheeze whenever I'm around fluffy animals."],
     ["Recommend a first pet for my family.",
      "Suggest a low-maintenance pet."]))

# -------------------------------------------------------------------------------------------------- religion
add("religion",
    ["pork", "ham", "prosciutto", "lard", "wine", "beer", "chorizo"],
    ["chicken", "lamb", "beef", "kebab", "falafel", "hummus", "olive", "turkey"],
    (["I'm Muslim and keep to a halal diet.",
      "I follow Islamic dietary rules strictly."],
     ["Suggest a dinner to cook for guests this weekend.",
      "What pizza toppings should I order tonight?",
      "What should I put on a snack board for friends?"]),
    (["My faith forbids pig products and alcohol.",
      "Everything I eat has to be halal."],
     ["Suggest a main dish for a family celebration.",
      "What should I make for a picnic lunch?"]))

add("religion",
    ["pork", "ham", "shrimp", "lobster", "crab", "cheeseburger", "clam", "oyster"],
    ["chicken", "salmon", "brisket", "beef", "tuna", "turkey", "lamb", "challah"],
    (["I keep kosher.",
      "Our family follows Jewish dietary laws at home."],
     ["What main course could I make for eight guests?",
      "Suggest a sandwich for a packed lunch.",
      "What should I grill for a summer cookout?"]),
    (["I observe the laws of kashrut in everything I eat.",
      "My household is strictly kosher, with separate dishes for meat and milk."],
     ["Suggest a dinner menu for a holiday meal.",
      "Recommend a dish for a family dinner on Sunday."]))

add("religion",
    ["onion", "garlic", "potato", "carrot", "beetroot", "chicken", "fish", "mutton"],
    ["paneer", "lentil", "tomato", "cabbage", "spinach", "rice", "chickpea", "cauliflower"],
    (["I follow a Jain diet, so no meat, eggs or root vegetables.",
      "As a Jain, I avoid anything grown underground as well as all animal flesh."],
     ["Suggest a curry for dinner.",
      "What should I cook for lunch on Sunday?",
      "Give me an idea for a light evening meal."]),
    (["I'm a strict Jain: no meat, no eggs, and nothing that grows below the soil.",
      "We're a Jain family, so roots and bulbs never come into our kitchen."],
     ["Suggest a dish for a festive family dinner.",
      "What could I make for a quick snack?"]))

add("religion",
    ["lunch", "brunch", "afternoon snack", "midday meal"],
    ["iftar", "suhoor", "sunset", "evening", "hydrate", "pre-dawn"],
    (["I'm fasting for Ramadan this month.",
      "I'm observing the Ramadan fast, so no food or drink while the sun is up."],
     ["Suggest a meal plan for tomorrow.",
      "How should I plan my day so I still have energy for work?",
      "When should I fit in a workout this week?"]),
    (["This month I don't eat or drink between dawn and dusk for religious reasons.",
      "It's the holy month and I'm keeping the daytime fast."],
     ["What should I eat to stay energetic tomorrow?",
      "Plan my meals for a busy Friday."]))

add("religion",
    ["wine", "cocktail", "margarita", "latte", "espresso", "cappuccino", "whiskey", "chai"],
    ["lemonade", "juice", "hot chocolate", "sparkling water", "mocktail", "smoothie", "soda", "milkshake"],
    (["I belong to a church that asks us to avoid alcohol, coffee and tea.",
      "I'm Mormon, so alcohol and coffee are both off the table for me."],
     ["What should I order when I meet friends at a bar tonight?",
      "Suggest a warm drink for a cold morning.",
      "What drinks should I serve at a dinner party?"]),
    (["My religion asks me to stay away from alcohol and caffeinated hot drinks.",
      "As a Latter-day Saint, I keep the Word of Wisdom."],
     ["Suggest drinks for my birthday party.",
      "What's a nice drink to order at a cafe?"]))

# -------------------------------------------------------------------------------------------------- mobility
WHEELCHAIR_TRAIN = ["I use a wheelchair full-time.",
                    "I'm paralysed from the waist down and get around in a power chair."]
WHEELCHAIR_TEST = ["Since my spinal injury I can't walk, so I roll everywhere.",
                   "I'm a manual wheelchair user."]

add("mobility",
    ["hike", "hiking", "climb", "climbing", "trek", "stairs", "walking tour"],
    ["accessible", "ramp", "paved", "elevator", "lift", "step-free", "flat", "boardwalk"],
    (WHEELCHAIR_TRAIN,
     ["What's a fun way to spend a Saturday in a new city?",
      "Suggest a day trip for this weekend.",
      "Recommend a nature outing for my day off."]),
    (WHEELCHAIR_TEST,
     ["Recommend an outing for my birthday.",
      "Suggest something to do on a sunny afternoon."]))

add("mobility",
    ["squat", "lunge", "running", "jumping jack", "burpee", "step-up", "jog", "calf raise"],
    ["seated", "arm", "upper body", "resistance band", "dumbbell", "shoulder", "chest press", "core"],
    (WHEELCHAIR_TRAIN,
     ["Suggest a workout I can do at home.",
      "How can I build strength this month?"]),
    (WHEELCHAIR_TEST,
     ["Suggest some exercises I can do before breakfast."]))

add("mobility",
    ["walking tour", "hike", "hiking", "climb", "stairs", "bike tour", "on foot", "trek"],
    ["bus", "taxi", "hop-on", "tram", "boat", "shuttle", "scenic drive", "bench"],
    (["I walk with a cane and can only manage short distances.",
      "My arthritis means I can't be on my feet for more than ten minutes at a time."],
     ["Suggest a way to see the sights in Rome.",
      "How should I explore a big city in one day?",
      "Plan a sightseeing day in Lisbon for me."]),
    (["My legs tire very quickly, so long walks are out of the question.",
      "I'm recovering from a hip replacement and can't go far without resting."],
     ["How can I see the highlights of Paris in an afternoon?",
      "Suggest a way to tour a national park."]))

# ---------------------------------------------------------------------------------------------------- injury
add("injury",
    ["running", "jogging", "squat", "lunge", "jumping", "burpee", "hiking", "jump rope"],
    ["upper body", "seated", "arm", "core", "dumbbell", "resistance band", "chair", "crunch"],
    (["I broke my ankle last week and I'm on crutches for a month.",
      "I had knee surgery three days ago and can't put weight on my left leg."],
     ["How can I stay active this month?",
      "Suggest a workout I can do at home.",
      "How can I keep my fitness up over the next few weeks?"]),
    (["My leg is in a cast until the end of the month.",
      "I fractured my foot and I'm not allowed to walk on it."],
     ["Give me an exercise routine for this week.",
      "What can I do to avoid losing muscle this month?"]))

add("injury",
    ["deadlift", "sit-up", "toe touch", "burpee", "box jump", "heavy squat", "crunch", "kettlebell swing"],
    ["walking", "swimming", "bird dog", "pelvic tilt", "physiotherapist", "physical therapist", "cat-cow",
     "gentle"],
    (["I have a herniated disc in my lower back.",
      "My lower back flares up whenever I bend or lift anything heavy."],
     ["Suggest exercises to stay in shape.",
      "What should I do at the gym this week?",
      "How can I build core strength?"]),
    (["I'm recovering from a slipped disc."],
     ["Give me a simple fitness plan for the month.",
      "Suggest a morning workout."]))

add("injury",
    ["push-up", "pull-up", "deadlift", "bench press", "dumbbell", "kettlebell", "handstand", "barbell"],
    ["walking", "squat", "lunge", "cycling", "leg", "stationary bike", "running", "wall sit"],
    (["I sprained my wrist and can't grip anything for a few weeks.",
      "My right hand is in a splint after a fall."],
     ["Suggest a workout for today.",
      "How can I keep training at the gym this month?",
      "What exercise could I do on my lunch break?"]),
    (["I fractured my wrist and it's in a brace."],
     ["Suggest a strength routine for this week.",
      "What exercise can I do at home tonight?"]))

# ---------------------------------------------------------------------------------------------------- budget
add("budget",
    ["luxury", "five-star", "spa", "limo", "fine dining", "champagne", "yacht", "tasting menu"],
    ["inexpensive", "picnic", "park", "homemade", "potluck", "library", "cheap", "movie night"],
    (["Money is really tight for me right now.",
      "I'm a student living on about 50 dollars a week after rent."],
     ["Suggest a fun date night idea.",
      "How can I celebrate my birthday this year?",
      "What could I do for our anniversary?"]),
    (["I lost my job recently, so I can't spend much at all.",
      "Every penny counts in my house this month."],
     ["What could I do with friends this weekend?",
      "Suggest a way to celebrate my friend's graduation."]))

add("budget",
    ["steak", "salmon", "lobster", "shrimp", "prosciutto", "truffle", "filet", "scallop"],
    ["rice", "bean", "lentil", "oat", "pasta", "egg", "potato", "frozen vegetable"],
    (["I have about 30 dollars to feed myself for the whole week.",
      "I'm on food stamps and every dollar at the supermarket counts."],
     ["Suggest some dinners I can cook this week.",
      "What should I buy on my next grocery run?",
      "Give me a meal prep plan for the week."]),
    (["Groceries have to come out of a very small pension.",
      "After bills, there's almost nothing left over for food."],
     ["Plan three days of simple meals for me.",
      "What's a good dish to make a big batch of on Sunday?"]))

add("budget",
    ["resort", "five-star", "luxury", "first class", "business class", "boutique hotel", "private driver", "limo"],
    ["hostel", "guesthouse", "camping", "bus", "train", "street food", "walking tour", "couchsurfing"],
    (["I'm backpacking with very little money.",
      "I saved for months, but my travel fund is tiny."],
     ["Where should I stay in Lisbon?",
      "How should I get from Paris to Amsterdam?",
      "Suggest how to spend three days in Barcelona."]),
    (["I'm travelling on a shoestring this summer.",
      "I'm a broke student heading to Europe."],
     ["Plan a long weekend in Prague for me.",
      "What's the best way to see Thailand in two weeks?"]))

add("budget",
    ["personal trainer", "treadmill", "peloton", "spin class", "rowing machine", "crossfit", "home gym"],
    ["bodyweight", "push-up", "squat", "walking", "running", "park", "youtube", "outdoor"],
    (["I have no spare money for fitness classes or equipment.",
      "Every spare dollar goes to rent, so exercise has to cost nothing."],
     ["How can I get in shape this year?",
      "Suggest a plan to lose some weight.",
      "How can I get stronger?"]),
    (["I'm broke, but I'd like to be fitter."],
     ["Suggest a plan to build strength.",
      "How can I improve my stamina?"]))

# ------------------------------------------------------------------------------------------------- transport
NO_CAR_TRAIN = ["I don't have a car.", "I gave up my car last year and haven't replaced it."]
NO_CAR_TEST = ["I don't own any vehicle and don't have a license.", "Our household has no car."]

add("transport",
    ["drive", "driving", "parking", "road trip", "rental car", "car rental"],
    ["bus", "train", "bike", "walk", "subway", "tram", "cycling", "metro"],
    (NO_CAR_TRAIN,
     ["Suggest a weekend getaway from the city.",
      "How should I get to the airport for an early flight?",
      "How can I get to work on time every day?"]),
    (NO_CAR_TEST,
     ["Plan a day out in the countryside.",
      "How should I get to a concert across town?"]))

add("transport",
    ["garage", "driveway", "parking", "cul-de-sac", "commute by car"],
    ["transit", "walkable", "bus", "train", "subway", "metro", "grocery store", "bike lane"],
    (NO_CAR_TRAIN,
     ["What should I look for when choosing a new apartment?",
      "Suggest what kind of neighborhood I should move to."]),
    (NO_CAR_TEST,
     ["What matters most when picking a place to live?"]))

add("transport",
    ["trunk", "parking", "drive", "driving", "car park", "minivan"],
    ["pannier", "basket", "cargo bike", "backpack", "trailer", "delivery", "bungee cord", "rack"],
    (["I don't own a car; my bicycle is how I get everywhere.",
      "Pedal power is my only way of getting around town."],
     ["How can I do a big weekly grocery shop?",
      "How should I carry things home from the hardware store?",
      "How can I take my laundry to the laundromat each week?"]),
    (["I cycle everywhere and have no other vehicle."],
     ["How can I bring a picnic for four people to the park?",
      "How should I get a large birthday cake to my friend's house?"]))

# --------------------------------------------------------------------------------------------------- climate
add("climate",
    ["wool", "sweater", "scarf", "fleece", "parka", "turtleneck", "corduroy", "thermal"],
    ["linen", "cotton", "hat", "sunscreen", "loose", "shorts", "sunglasses", "breathable"],
    (["I live in Phoenix, where summer days are often above 110 degrees Fahrenheit.",
      "We're in the middle of a heatwave, with temperatures above 40 degrees Celsius every day."],
     ["What should I wear for a day of errands?",
      "Suggest an outfit for a casual dinner with friends.",
      "What should I wear to my cousin's outdoor wedding?"]),
    (["Summers in my town are scorching, and it's summer now.",
      "It's 42 degrees Celsius here this week."],
     ["What should I wear to an outdoor market tomorrow?",
      "Suggest an outfit for a first date this weekend."]))

add("climate",
    ["shorts", "sandal", "flip-flop", "tank top", "sundress", "linen", "crop top", "espadrille"],
    ["thermal", "wool", "parka", "insulated", "layer", "mitten", "balaclava", "down jacket"],
    (["I live in northern Alaska, and it's 30 below outside this week.",
      "It's well below freezing here and the snow is piled up to the windows."],
     ["What should I wear for a day of errands?",
      "What should I wear to walk the dog?",
      "Suggest an outfit for watching a football game outdoors."]),
    (["The temperature here hasn't climbed above minus 20 in weeks.",
      "It's the depth of winter in Winnipeg, and bitterly cold."],
     ["What should I wear to an outdoor market tomorrow?",
      "Suggest an outfit for a first date this weekend."]))

add("climate",
    ["beach", "swimming", "sunbathing", "surfing", "barbecue", "snorkel", "water park"],
    ["skiing", "snowshoe", "sledding", "ice skating", "snowman", "cross-country", "hot chocolate", "snowball"],
    (["It's the middle of winter here and everything is covered in snow.",
      "We just got two feet of fresh snow in my town."],
     ["Suggest an outdoor activity for the weekend.",
      "What can I do with the kids outside on Saturday?",
      "Plan a fun day outside with my partner."]),
    (["There's deep snow on the ground and it's freezing."],
     ["What's a fun thing to do outdoors with friends tomorrow?",
      "Suggest a way to spend a day off outside."]))

add("climate",
    ["picnic", "beach", "hike", "hiking", "barbecue", "sunbathing", "outdoor pool"],
    ["museum", "movie", "board game", "cinema", "bowling", "aquarium", "baking", "escape room"],
    (["It's been pouring rain all week and the forecast says it'll continue.",
      "We're in the middle of monsoon season here."],
     ["What should we do with our day off tomorrow?",
      "Suggest a fun family outing for Saturday.",
      "What can I do with visiting friends this weekend?"]),
    (["The forecast shows heavy storms all weekend.",
      "It hasn't stopped raining for days, and it won't stop soon."],
     ["Suggest a plan for Saturday with my partner.",
      "What could the kids and I do tomorrow?"]))

add("climate",
    ["stew", "roast", "casserole", "lasagna", "pot pie", "baked ziti", "braise", "chowder"],
    ["salad", "gazpacho", "chilled", "no-cook", "ceviche", "watermelon", "wrap", "cucumber"],
    (["It's 38 degrees Celsius here and my flat has no air conditioning.",
      "My kitchen turns into a sauna in this summer heat, and there's no AC."],
     ["What should I make for dinner tonight?",
      "Suggest a meal to share with my roommate this evening.",
      "What could I cook for friends coming over on Saturday?"]),
    (["We're in a brutal heatwave and the house is stifling."],
     ["Give me an idea for a family dinner tonight.",
      "What should I make for lunch tomorrow?"]))

# -------------------------------------------------------------------------------------------------- schedule
add("schedule",
    ["morning sunlight", "morning light", "every night", "nightly"],
    ["blackout", "eye mask", "earplug", "daytime", "white noise", "curtain", "during the day", "nap"],
    (["I work night shifts as a nurse, from seven in the evening to seven in the morning.",
      "I'm a security guard on the graveyard shift."],
     ["How can I improve my sleep?",
      "Suggest a bedtime routine that would help me rest.",
      "How can I stop feeling so tired all the time?"]),
    (["I work in a factory overnight and get home at dawn."],
     ["Give me tips to sleep more soundly.",
      "How can I feel more rested during the week?"]))

add("schedule",
    ["slow cooker", "casserole", "lasagna", "risotto", "braise", "marinate", "stew", "roast"],
    ["microwave", "wrap", "sandwich", "quesadilla", "stir-fry", "leftover", "salad", "instant"],
    (["I have ten minutes between getting home and leaving for my second job.",
      "My evenings are packed, and I rarely get more than a quarter of an hour to cook."],
     ["What can I make for dinner tonight?",
      "Suggest a weeknight meal.",
      "What should I eat before my evening class?"]),
    (["Between my two jobs, I have almost no time to spend in the kitchen."],
     ["Give me a dinner idea for Wednesday.",
      "What could I eat tonight after work?"]))

add("schedule",
    ["evening class", "night class", "book club", "pub quiz", "stargazing", "trivia night", "late-night"],
    ["journaling", "yoga", "running", "meditation", "sunrise", "reading", "sketching", "language app"],
    (["The only free time I have is between 5 and 6 in the morning.",
      "My one quiet hour each day is at dawn, before everyone else wakes up."],
     ["Suggest a hobby I could pick up.",
      "What's a good way to use my free time for self-improvement?",
      "Suggest a new habit I could build this year."]),
    (["I only get a little time to myself very early each morning."],
     ["Recommend a new hobby for me.",
      "What could I learn this year?"]))

add("schedule",
    ["fern", "maidenhair", "calathea", "fiddle leaf fig", "basil", "azalea"],
    ["succulent", "cactus", "snake plant", "zz plant", "self-watering", "drought-tolerant", "pothos", "jade"],
    (["I travel for work Monday to Thursday every week.",
      "I'm away from home most weeks for my job."],
     ["Which houseplant should I get?",
      "Suggest a plant for my bedroom.",
      "What greenery would suit my home office?"]),
    (["My job keeps me on the road four days out of seven."],
     ["Recommend a plant to brighten my living room.",
      "What plant would look nice on my kitchen windowsill?"]))

add("schedule",
    ["september", "october", "april", "shoulder season", "off-season", "spring", "autumn", "november"],
    ["summer", "crowd", "book early", "peak season", "heat", "hot", "early morning", "sunscreen"],
    (["I'm a teacher, so I can only travel in July and August.",
      "I work at a school and can only take vacation when classes are out in July and August."],
     ["When should I plan my trip to Greece?",
      "When is a good time for me to visit Italy?"]),
    (["I'm a school teacher; my only long break is July and August."],
     ["When should I book a trip to Spain?",
      "Help me plan the timing of a trip to Croatia."]))

# ------------------------------------------------------------------------------------------------------- age
add("age",
    ["running", "sprint", "jump", "jumping", "burpee", "skateboard", "rock climbing", "heavy lifting"],
    ["chair", "tai chi", "walking", "water aerobics", "gentle", "seated", "stretching", "swimming"],
    (["I'm 82 and my balance isn't what it used to be.",
      "I'm in my late eighties and use a walker for longer distances."],
     ["Suggest a way to stay active.",
      "What exercise should I do this week?",
      "How can I keep my legs strong?"]),
    (["I turned 90 this spring and I'm a little frail.",
      "I'm a great-grandmother in my nineties."],
     ["Suggest a daily routine to keep me moving.",
      "What's a good hobby that keeps me fit?"]))

add("age",
    ["freelance", "freelancing", "invest", "investing", "stock market", "cryptocurrency", "credit card",
     "side hustle"],
    ["lemonade stand", "chore", "allowance", "bake sale", "piggy bank", "yard sale", "parent", "car wash"],
    (["I'm 10 years old.",
      "I'm in fourth grade and I just turned nine."],
     ["Suggest a way to earn some money.",
      "How can I make some money this summer?",
      "How can I save up for something I really want?"]),
    (["I'm a kid, only eight years old."],
     ["How can I save up for a new video game?",
      "What's a good way to make a little extra money?"]))

add("age",
    ["nightclub", "pub", "cocktail", "wine", "beer", "casino", "bar crawl", "wine tasting"],
    ["movie", "bowling", "arcade", "sleepover", "friend", "pizza", "board game", "mini golf"],
    (["I'm 15 years old.",
      "I'm a high school sophomore."],
     ["Suggest a fun thing to do on Friday night.",
      "What should I do to celebrate the end of exams?",
      "Plan a fun evening out for this weekend."]),
    (["I'm sixteen and still live with my parents."],
     ["Plan a fun Saturday night for me and a few others.",
      "Suggest something to do to celebrate my birthday."]))

# ---------------------------------------------------------------------------------------------- skill_level
add("skill_level",
    ["souffle", "beef wellington", "risotto", "sous vide", "hollandaise", "croquembouche", "flambe", "consomme"],
    ["pasta", "sheet pan", "one-pot", "stir-fry", "taco", "omelet", "easy", "simple"],
    (["I've never cooked anything more complicated than toast.",
      "I'm a total beginner in the kitchen and can barely boil an egg."],
     ["Suggest a dinner I could make for my partner.",
      "What should I cook for friends on Saturday?",
      "What's a good dish to make for a special occasion?"]),
    (["I've basically never cooked a real meal before."],
     ["What could I make for my parents when they visit?",
      "Suggest a dish to bring to a family dinner."]))

add("skill_level",
    ["half marathon", "marathon", "tempo run", "hill repeat", "fartlek", "interval sprint", "10 miles"],
    ["couch to 5k", "walk", "run-walk", "minute", "slow", "rest day", "gradually", "beginner"],
    (["I've never been a runner and I get out of breath after one block.",
      "I haven't exercised in years and I'm starting from zero."],
     ["Suggest a running plan for the next month.",
      "How should I start running?",
      "Give me a running schedule for this week."]),
    (["I'm completely new to running and quite unfit."],
     ["Give me a plan to get better at running.",
      "How often should I run this week?"]))

add("skill_level",
    ["artichoke", "asparagus", "cauliflower", "celery", "melon", "brussels sprout"],
    ["radish", "lettuce", "herb", "basil", "zucchini", "bean", "mint", "cherry tomato"],
    (["I've never grown anything and I kill every plant I touch.",
      "This is my very first year with a vegetable patch."],
     ["What vegetable should I grow first?",
      "Suggest some crops for my garden this year.",
      "What should I sow this spring?"]),
    (["I'm brand new to gardening."],
     ["What should I plant in my raised bed this year?",
      "Recommend a few things to grow this season."]))

add("skill_level",
    ["sweater", "sock", "cable", "lace", "fair isle", "colorwork", "glove", "intarsia"],
    ["scarf", "dishcloth", "garter stitch", "cowl", "headband", "coaster", "chunky yarn", "blanket"],
    (["I learned to knit a few days ago and can only do the basic knit stitch.",
      "I'm a complete beginner at knitting."],
     ["Suggest a knitting project for this month.",
      "What should I knit as a gift for my sister?",
      "What could I knit to use up some leftover yarn?"]),
    (["I just picked up knitting needles for the first time."],
     ["What's a good project to make with my new yarn?",
      "Suggest something I could knit for my nephew."]))

add("skill_level",
    ["deep water", "cliff jumping", "diving", "scuba", "swim across", "open water"],
    ["life jacket", "shallow", "paddle boat", "picnic", "shore", "wading", "sandcastle", "fishing"],
    (["I'm still learning to swim and can't tread water yet.",
      "I only started swimming lessons last month."],
     ["Suggest a fun thing to do at the lake.",
      "What should we do on our beach day?",
      "Plan a day at the water park for me."]),
    (["I'm a weak swimmer and not confident in the water."],
     ["Plan an afternoon at the seaside for me.",
      "What could I do at a lakeside cabin this weekend?"]))

# ------------------------------------------------------------------------------------------------- equipment
add("equipment",
    ["oven", "bake", "roast", "grill", "stovetop", "skillet", "saute", "frying pan"],
    ["mug", "popcorn", "steamed", "instant", "ramen", "potato", "quesadilla", "oatmeal"],
    (["My dorm room only has a microwave and a mini fridge.",
      "There's no kitchen in my office, only a microwave and a kettle."],
     ["Suggest a dinner I can make.",
      "What could I cook for lunch tomorrow?",
      "Give me a breakfast idea for busy mornings."]),
    (["The only cooking appliance in my rented room is a small microwave."],
     ["Suggest a warm meal for a cold evening.",
      "What could I make for a late-night snack?"]))

add("equipment",
    ["barbell", "dumbbell", "kettlebell", "bench press", "cable machine", "leg press", "treadmill",
     "rowing machine"],
    ["push-up", "squat", "lunge", "plank", "bodyweight", "burpee", "glute bridge", "mountain climber"],
    (["I work out at home and own no equipment at all.",
      "I don't have any weights or machines, just a bit of floor space."],
     ["Suggest a workout for building strength.",
      "Give me a 20-minute workout for today.",
      "How can I tone my arms and shoulders?"]),
    (["There's no exercise gear in my apartment whatsoever."],
     ["Suggest a full-body routine for tomorrow.",
      "How can I train my legs this week?"]))

add("equipment",
    ["smoothie", "protein shake", "acai bowl", "frappe", "puree"],
    ["oatmeal", "yogurt", "egg", "toast", "granola", "fruit", "overnight oat", "porridge"],
    (["I don't own a blender or food processor.",
      "My kitchen is tiny and has no blender."],
     ["Suggest a healthy breakfast.",
      "What's a good post-workout snack?"]),
    (["There's no blender in my kitchen and I'm not buying one."],
     ["Give me a nutritious breakfast idea for tomorrow.",
      "Suggest a refreshing snack for a hot day."]))

add("equipment",
    ["cake", "brownie", "pie", "muffin", "tart", "cupcake", "souffle", "scone"],
    ["pudding", "pancake", "crepe", "poached pear", "rice pudding", "fried banana", "stovetop", "no-bake"],
    (["I only have a two-burner stove, no oven.",
      "My tiny kitchen has a hotplate and nothing else."],
     ["Suggest a dessert I could make.",
      "What sweet treat could I make for my kids?",
      "What could I make for a bake sale at school?"]),
    (["My apartment came with a cooktop but no oven."],
     ["What could I serve for dessert when guests come over?",
      "What could I make for a sweet breakfast treat?"]))

# ------------------------------------------------------------------------------------------------------ pets
CAT_TRAIN = ["I have two curious cats who chew on everything.", "My kitten nibbles any leaf she can reach."]
CAT_TEST = ["My cat loves to chew on plants.",
            "There's a cat in my home who investigates every new thing I bring in."]

add("pets",
    ["lily", "pothos", "aloe", "philodendron", "monstera", "sago palm", "lilies", "snake plant"],
    ["spider plant", "calathea", "boston fern", "parlor palm", "areca palm", "prayer plant", "peperomia",
     "cat grass"],
    (CAT_TRAIN,
     ["Suggest a houseplant for my living room.",
      "What plants would brighten up my kitchen?"]),
    (CAT_TEST,
     ["Recommend some greenery for my study.",
      "What's a good plant for a shady corner?"]))

add("pets",
    ["lily", "tulip", "daffodil", "hyacinth", "azalea", "chrysanthemum", "lilies", "amaryllis"],
    ["rose", "sunflower", "orchid", "snapdragon", "gerbera", "freesia", "zinnia", "aster"],
    (CAT_TRAIN,
     ["What flowers should I put on my dining table?",
      "Suggest a bouquet to brighten my home."]),
    (CAT_TEST,
     ["Which flowers should I buy for a vase on the windowsill?"]))

add("pets",
    ["museum", "cinema", "movie theater", "spa", "theater", "concert", "art gallery", "opera"],
    ["dog park", "trail", "hike", "beach", "leash", "fetch", "dog-friendly", "pet-friendly"],
    (["I take my dog everywhere I go.",
      "My border collie comes with me on every outing."],
     ["Suggest something to do on Sunday.",
      "Plan a relaxing Saturday for me.",
      "What could I do on my day off?"]),
    (["Wherever I spend the day, my pup spends it with me."],
     ["What's a good way to spend a free afternoon?",
      "Suggest a fun activity for this weekend."]))

add("pets",
    ["cruise", "flight", "overseas", "theme park", "all-inclusive", "long-haul"],
    ["road trip", "cabin", "dog-friendly", "pet-friendly", "camping", "beach", "lake", "cottage"],
    (["I have an elderly dog I won't leave behind.",
      "My big old labrador comes on every holiday with me."],
     ["Suggest a vacation for this summer.",
      "Where should I go for a long weekend?",
      "Plan a week away for me in June."]),
    (["I never board my dog; she travels with me."],
     ["Plan a holiday for me in the autumn.",
      "Suggest a getaway for my next week off."]))

# ---------------------------------------------------------------------------------------------------- health
add("health",
    ["cake", "candy", "ice cream", "donut", "milkshake", "brownie", "soda", "caramel"],
    ["berries", "greek yogurt", "dark chocolate", "almond", "nut", "apple", "cinnamon", "chia"],
    (["I have type 2 diabetes.",
      "My doctor says I need to keep a close eye on my blood sugar."],
     ["Suggest a dessert for after dinner.",
      "What's a good afternoon snack?",
      "Suggest a treat for movie night."]),
    (["I was recently diagnosed as diabetic.",
      "My blood glucose runs high and I'm on metformin."],
     ["What could I have as a sweet snack at work?",
      "What's a nice dessert to serve at a family lunch?"]))

add("health",
    ["soy sauce", "bacon", "salami", "ham", "pickle", "instant noodle", "deli meat", "cured meat"],
    ["herb", "lemon", "unsalted", "garlic", "spice", "pepper", "homemade", "vinegar"],
    (["My doctor told me to cut way down on salt because of my blood pressure.",
      "I have high blood pressure and I'm on a strict low-salt diet."],
     ["Suggest a lunch I can pack for work.",
      "Give me a dinner idea for tonight.",
      "What could I snack on in the evening?"]),
    (["I'm supposed to keep my sodium intake very low for my heart."],
     ["What's a good sandwich filling?",
      "Suggest a flavorful soup I could make."]))

add("health",
    ["sashimi", "raw oyster", "cocktail", "rare steak", "carpaccio", "steak tartare", "wine pairing", "champagne"],
    ["cooked", "well-done", "mocktail", "pasta", "grilled chicken", "teriyaki", "curry", "sparkling water"],
    (["I'm five months pregnant.",
      "I'm pregnant with twins."],
     ["What should I order at a restaurant tonight?",
      "Suggest a menu for a celebration dinner at home.",
      "What should I order for a birthday dinner out?"]),
    (["I'm in my third trimester."],
     ["Recommend a dish for a date night out.",
      "What should I order at a Japanese restaurant?"]))

add("health",
    ["concert", "nightclub", "rave", "festival", "fireworks", "laser tag", "arcade", "karaoke"],
    ["quiet", "book", "dinner", "home", "board game", "garden", "picnic", "calm"],
    (["I get migraines that are triggered by bright lights and loud noise.",
      "Flashing lights and booming sound give me crushing headaches."],
     ["Suggest something fun to do on Friday night.",
      "Suggest a way to celebrate my anniversary.",
      "What should I do on New Year's Eve?"]),
    (["Loud, bright places set off my migraines."],
     ["Plan a night out with my friends.",
      "What could we do for my sister's birthday?"]))

add("health",
    ["energy drink", "cola", "black tea", "green tea", "matcha", "espresso", "yerba mate", "red bull"],
    ["herbal", "decaf", "chamomile", "peppermint", "rooibos", "water", "juice", "smoothie"],
    (["I'm extremely sensitive to caffeine; even a little keeps me up all night.",
      "Caffeine makes my heart race, so I've cut it out completely."],
     ["Suggest a drink for the afternoon.",
      "What hot drink should I order at a coffee shop?",
      "What should I drink while studying late?"]),
    (["My cardiologist told me to avoid all caffeine."],
     ["What should I drink to perk up in the morning?",
      "Recommend a warm drink for a chilly evening."]))

# -------------------------------------------------------------------------------------------------- location
add("location",
    ["mall", "department store", "boutique", "downtown", "shopping center", "outlet"],
    ["online", "catalog", "etsy", "delivery", "handmade", "homemade", "mail", "shipping"],
    (["I live in a small rural village with no shops within 30 miles.",
      "Our farm is an hour's drive from the nearest town."],
     ["Where can I buy a birthday present for my niece?",
      "How should I shop for new winter boots?",
      "Where can I get a new lamp for my bedroom?"]),
    (["I live way out in the countryside, far from any stores."],
     ["How can I get a gift for my dad's retirement?",
      "Where should I buy a new pair of jeans?"]))

add("location",
    ["snowman", "sledding", "ice skating", "snowball", "sleigh", "fireplace", "skiing", "snowflake"],
    ["beach", "barbecue", "picnic", "swimming", "pool", "cricket", "seafood", "pavlova"],
    (["I live in Melbourne, where December is the middle of summer.",
      "I'm in Sydney, where Christmas falls in the heat of summer."],
     ["Plan a family activity for the Christmas holidays.",
      "Suggest a menu for Christmas Day.",
      "How should we celebrate the end of the year with friends?"]),
    (["Christmas where I live, in Cape Town, comes in midsummer."],
     ["What should we do together on Boxing Day?",
      "Suggest how to spend New Year's Eve with the kids."]))

add("location",
    ["surfing", "seaside", "coast", "coastal", "snorkeling", "sea kayaking", "whale watching"],
    ["lake", "state park", "hiking", "river", "small town", "camping", "trail", "winery"],
    (["I live in Kansas, about a thousand miles from any ocean.",
      "My home is in the landlocked middle of the country, far from the sea."],
     ["Suggest a weekend getaway within a few hours of home.",
      "Suggest a day trip for Sunday.",
      "Where could we go for a nearby family weekend this summer?"]),
    (["I live in Nebraska, as far from salt water as you can get."],
     ["Plan an overnight trip nearby for me.",
      "Suggest a short trip for a long weekend."]))

# --------------------------------------------------------------------------------------------------- housing
NOISE_TRAIN = ["I live in an apartment with paper-thin walls and a neighbor who complains.",
               "My downstairs neighbor bangs on the ceiling whenever I make noise."]
NOISE_TEST = ["The people below me work nights and sleep during the day, so I have to keep the noise down.",
              "I share a flat with light sleepers and the walls carry every sound."]

add("housing",
    ["jumping jack", "burpee", "jump rope", "skipping rope", "box jump", "jump squat", "high knees",
     "tuck jump"],
    ["yoga", "pilates", "plank", "stretching", "mat", "low-impact", "wall sit", "glute bridge"],
    (NOISE_TRAIN,
     ["Suggest a cardio workout I can do at home.",
      "How can I get my heart rate up indoors?"]),
    (NOISE_TEST,
     ["What's a good home workout for tonight?",
      "Suggest an exercise routine for my living room."]))

add("housing",
    ["trumpet", "saxophone", "bagpipe", "trombone", "tuba", "french horn"],
    ["headphone", "digital piano", "keyboard", "ukulele", "silent", "electronic", "classical guitar"],
    (NOISE_TRAIN,
     ["Suggest an instrument to learn.",
      "What musical hobby could I take up?"]),
    (NOISE_TEST,
     ["Which instrument should I buy as a beginner?"]))

add("housing",
    ["backyard", "raised bed", "orchard", "greenhouse", "chicken coop", "allotment", "vegetable patch",
     "fruit tree"],
    ["windowsill", "herb", "microgreen", "sprout", "pot", "container", "grow light", "basil"],
    (["I live in a tiny studio apartment with no balcony or yard.",
      "My flat is on the 14th floor and has no outdoor space at all."],
     ["How can I grow some of my own food?",
      "Suggest a gardening project for this spring.",
      "What could I grow to save money on groceries?"]),
    (["I rent a small city apartment without any garden."],
     ["What could I grow to cook with?",
      "How can I start a little garden this year?"]))

add("housing",
    ["paint", "drill", "repaint", "accent wall", "built-in", "knock down", "new flooring"],
    ["rug", "plant", "removable", "peel-and-stick", "throw pillow", "lamp", "curtain", "adhesive"],
    (["I rent, and my landlord won't let me change anything permanent.",
      "My lease forbids any alterations to the walls or fixtures."],
     ["How can I make my living room feel more personal?",
      "Suggest ways to brighten up my bedroom.",
      "How can I make my hallway look more welcoming?"]),
    (["I'm a tenant and I'll lose my deposit if I alter anything."],
     ["How can I make my apartment feel cozier?",
      "Suggest a quick makeover for my kitchen."]))

# ---------------------------------------------------------------------------------------------------- family
add("family",
    ["pub", "nightclub", "wine tasting", "brewery", "casino", "escape room", "cocktail", "late-night"],
    ["playground", "park", "zoo", "library", "story time", "toddler", "splash pad", "petting zoo"],
    (["I'm a single dad with a two-year-old.",
      "We have a very energetic two-year-old who comes everywhere with us."],
     ["Suggest a weekend activity.",
      "Plan a Saturday morning out.",
      "What could we do on a free Sunday?"]),
    (["I'm home with my little one, who just started walking."],
     ["What's a good outing for tomorrow?",
      "Suggest a way to spend a sunny afternoon."]))

add("family",
    ["pub crawl", "nightclub", "wine bar", "cocktail", "pub", "casino", "brewery"],
    ["natural history museum", "science museum", "zoo", "playground", "aquarium", "family-friendly", "park",
     "ice cream"],
    (["We're travelling with three kids under ten.",
      "I'm taking my two young children on their first city trip."],
     ["Plan a day in London.",
      "Suggest how to spend an evening in Edinburgh.",
      "What should we do in Amsterdam on Saturday?"]),
    (["I'll have my kids, aged 5 and 7, with me the whole trip."],
     ["What should we do in New York for a day?",
      "Suggest a weekend itinerary for Berlin."]))

add("family",
    ["marathon", "spin class", "triathlon", "training camp", "boot camp", "crossfit"],
    ["stroller", "pram", "carrier", "short", "home workout", "nap time", "walk", "10-minute"],
    (["I'm a single parent with a newborn and barely get a free hour.",
      "I had a baby six weeks ago and I'm home with him all day."],
     ["How can I stay fit?",
      "Suggest a way to get some exercise this week.",
      "How can I lose the weight I put on this year?"]),
    (["Our newborn takes up every waking hour, and I'm the main caregiver."],
     ["How can I get back in shape?",
      "Suggest a fitness routine for this month."]))

add("family",
    ["getaway", "vacation", "road trip", "retreat", "cruise", "night out", "weekend away"],
    ["home", "respite", "garden", "bath", "reading", "meditation", "podcast", "caregiver"],
    (["I look after my mother, who has dementia and can't be left alone.",
      "I'm the full-time carer for my elderly father."],
     ["Suggest a way to relax this weekend.",
      "How can I recharge when I feel burnt out?",
      "What could I do for my own birthday this year?"]),
    (["My husband has advanced Parkinson's, and I'm with him around the clock."],
     ["What could I do to unwind tonight?",
      "Suggest a way to treat myself this month."]))

# -------------------------------------------------------------------------------------------------- sobriety
SOBER_TRAIN = ["I'm three years sober.", "I'm in recovery from alcoholism and don't drink anymore."]
SOBER_TEST = ["I quit drinking for good last year.", "Alcohol has no place in my life anymore."]

add("sobriety",
    ["champagne", "prosecco", "whiskey", "happy hour", "pub crawl", "cocktail", "brewery", "wine tasting"],
    ["dinner", "mocktail", "cake", "spa", "concert", "sparkling juice", "karaoke", "bowling"],
    (SOBER_TRAIN,
     ["Suggest a way to celebrate my promotion.",
      "How should I celebrate finishing my degree?",
      "What's a good way to celebrate a friend's engagement?"]),
    (SOBER_TEST,
     ["Plan a celebration for my 40th birthday.",
      "What's a fun way to mark a big work milestone?"]))

add("sobriety",
    ["cocktail", "champagne", "sangria", "prosecco", "vodka", "rum punch", "margarita", "mimosa"],
    ["mocktail", "lemonade", "iced tea", "sparkling water", "juice", "soda", "agua fresca"],
    (SOBER_TRAIN,
     ["Suggest drinks to serve at my housewarming.",
      "What should I drink at a wedding reception?"]),
    (SOBER_TEST,
     ["What drinks should I stock for a summer party?"]))

add("sobriety",
    ["bar crawl", "pub crawl", "brewery", "cocktail", "happy hour", "bourbon", "daiquiri", "wine bar"],
    ["jazz", "beignet", "live music", "ghost tour", "dinner", "food tour", "dessert", "comedy"],
    (SOBER_TRAIN,
     ["Suggest a fun night out in New Orleans.",
      "Plan an evening in Dublin for me."]),
    (SOBER_TEST,
     ["What should I do on a Saturday night in Nashville?"]))

# --------------------------------------------------------------------------------------------------- hearing
DEAF_TRAIN = ["I'm Deaf and communicate in sign language.", "I've been profoundly deaf since birth."]
DEAF_TEST = ["I have no hearing at all.", "I'm hard of hearing and can't make out speech without help."]

add("hearing",
    ["podcast", "audiobook", "radio", "playlist", "music", "singing"],
    ["book", "subtitle", "caption", "reading", "painting", "puzzle", "bath", "journaling"],
    (DEAF_TRAIN,
     ["Suggest a way to relax in the evening.",
      "Recommend something to do on a long train ride.",
      "What could I do to unwind after a stressful day?"]),
    (DEAF_TEST,
     ["What's a good way to pass a rainy afternoon?",
      "Suggest something to do during my lunch break."]))

add("hearing",
    ["podcast", "audiobook", "radio", "lecture", "audio course"],
    ["book", "subtitle", "caption", "museum", "article", "graphic novel", "documentary", "exhibit"],
    (DEAF_TRAIN,
     ["Suggest a way to learn about history.",
      "How can I learn more about science in my free time?"]),
    (DEAF_TEST,
     ["How could I learn about art this year?"]))

add("hearing",
    ["phone call", "voice message", "voice note", "voicemail"],
    ["video", "caption", "text", "letter", "email", "chat", "messaging", "postcard"],
    (["I lost most of my hearing after an illness last year.",
      "My hearing aids don't help much on the phone anymore."],
     ["How can I keep in touch with my grandkids who live far away?",
      "Suggest a way to stay close to an old friend abroad.",
      "How can I keep up with my old colleagues?"]),
    (["I'm losing my hearing and struggle to follow conversations I can't see."],
     ["How can I stay connected with my family overseas?",
      "What's a good way to check in with my brother each week?"]))

# ---------------------------------------------------------------------------------------------------- vision
BLIND_TRAIN = ["I'm blind.", "I lost my sight completely a few years ago."]
BLIND_TEST = ["I have no vision at all.", "My eyes can only tell light from dark."]

add("vision",
    ["painting", "drawing", "photography", "sketching", "watercolor", "coloring"],
    ["audiobook", "podcast", "music", "braille", "pottery", "knitting", "cooking", "swimming"],
    (BLIND_TRAIN,
     ["Suggest a hobby I could try.",
      "What's a new skill I could learn this winter?",
      "Suggest a relaxing pastime for the evenings."]),
    (BLIND_TEST,
     ["Recommend a creative pastime for me.",
      "What could I do to fill my weekends?"]))

add("vision",
    ["movie", "film", "crossword", "sudoku", "magazine", "coloring book", "word search"],
    ["audiobook", "podcast", "music", "playlist", "nap", "meditation", "headphone", "audio"],
    (BLIND_TRAIN,
     ["Suggest a way to pass a long flight.",
      "What can I do to stay entertained on a six-hour bus ride?"]),
    (BLIND_TEST,
     ["What should I bring to keep busy on a long train journey?"]))

add("vision",
    ["art gallery", "stargazing", "painting class", "sightseeing", "photography", "scenic viewpoint"],
    ["concert", "cooking class", "wine tasting", "dinner", "comedy", "music", "dance", "spa"],
    (BLIND_TRAIN,
     ["Suggest a fun idea for a date.",
      "Plan a special evening for my anniversary."]),
    (BLIND_TEST,
     ["What could I do with my partner this Friday?"]))

# ------------------------------------------------------------------------------------------------ technology
add("technology",
    ["app", "duolingo", "online", "website", "youtube", "podcast", "zoom", "streaming"],
    ["library", "textbook", "class", "workbook", "flashcard", "community college", "tutor",
     "conversation partner"],
    (["I don't have internet at home and I don't own a smartphone.",
      "I have no computer and no data plan, just an old flip phone."],
     ["How can I learn Spanish?",
      "Suggest a way to pick up basic French before my trip.",
      "How could I brush up on my Portuguese?"]),
    (["There's no internet connection where I live."],
     ["How should I start learning Italian?",
      "What's a good way to learn German?"]))

OFFLINE_TRAIN = ["I'm 79 and I've never used a computer.", "I don't use the internet at all, and I never have."]
OFFLINE_TEST = ["Computers and smartphones are a mystery to me, so I don't use them.",
                "I have no gadgets at home, just a landline."]

add("technology",
    ["app", "online", "website", "yelp", "google", "search engine", "online review", "angi"],
    ["neighbor", "friend", "phone book", "yellow pages", "recommendation", "word of mouth", "newspaper",
     "hardware store"],
    (OFFLINE_TRAIN,
     ["How can I find a good plumber?",
      "How should I find a reliable electrician?",
      "How do I find a good painter for my house?"]),
    (OFFLINE_TEST,
     ["How do I find someone trustworthy to fix my roof?",
      "What's the best way to find a good dentist nearby?"]))

add("technology",
    ["app", "spreadsheet", "excel", "software", "online banking", "ynab"],
    ["notebook", "envelope", "paper", "pen", "cash", "ledger", "receipt", "jar"],
    (OFFLINE_TRAIN,
     ["Suggest a way to keep track of my spending.",
      "How can I stick to a monthly budget?"]),
    (OFFLINE_TEST,
     ["How can I save more money each month?"]))

add("technology",
    ["netflix", "streaming", "youtube", "online game", "video call", "social media"],
    ["book", "board game", "card game", "puzzle", "journal", "guitar", "crossword", "stargazing"],
    (["I'm working at a remote cabin with no internet or phone signal for the next month.",
      "Where I'm staying there's no wifi and no cell coverage."],
     ["Suggest some entertainment for my evenings.",
      "How can I keep myself busy on weekends?",
      "What could I do on a quiet Sunday?"]),
    (["I'll be completely offline for three weeks at a research station."],
     ["What can I do to pass the time after work?",
      "Suggest a way to have fun tonight."]))

# ---------------------------------------------------------------------------------------------------- values
add("values",
    ["flight", "airport", "airline", "airfare", "layover", "boarding pass"],
    ["train", "ferry", "bus", "rail", "sleeper", "overnight train", "coach", "interrail"],
    (["I don't travel by air, for environmental reasons.",
      "I've sworn off air travel to cut my carbon footprint."],
     ["How should I get from London to Rome?",
      "Suggest a vacation in Europe for next summer.",
      "How should I get to my sister's wedding in Vienna?"]),
    (["I refuse to take to the skies because of the emissions."],
     ["Plan a trip from New York to Chicago.",
      "How should I get from Madrid to Paris?"]))

add("values",
    ["plastic wrap", "cling film", "ziploc", "juice box", "individually wrapped", "sandwich bag"],
    ["reusable", "bento", "container", "jar", "beeswax wrap", "cloth", "stainless steel", "leftover"],
    (["I'm trying to produce as little trash as possible.",
      "Our family is going zero-waste this year."],
     ["What should I pack for lunch?",
      "Suggest a packed lunch for my son's school trip.",
      "How should I pack snacks for a day at the beach?"]),
    (["I hate throwing things away and want my household to create almost no garbage."],
     ["How should I pack a picnic for four?",
      "What's a good work lunch to bring tomorrow?"]))

add("values",
    ["wool", "shearling", "cashmere", "suede", "goose down", "merino", "alpaca", "silk"],
    ["synthetic", "polyester", "recycled", "primaloft", "faux", "nylon", "cotton", "fleece"],
    (["I don't wear anything made from animals.",
      "Ethically, I can't buy clothing that used animals in any way."],
     ["Suggest a warm coat for winter.",
      "What should I look for in a new sweater?",
      "What should I wear for a winter hike?"]),
    (["I'm an ethical vegan, and that includes what I wear."],
     ["Recommend a scarf for the cold months.",
      "What kind of blanket should I buy for my couch?"]))

add("values",
    ["ikea", "wayfair", "amazon", "department store", "flat-pack", "showroom"],
    ["thrift", "charity shop", "flea market", "craigslist", "facebook marketplace", "estate sale", "auction",
     "vintage"],
    (["I only buy secondhand to cut down on waste.",
      "I refuse to buy anything new if a used one will do."],
     ["Where should I get furniture for my new flat?",
      "Where can I find a desk for my home office?",
      "Where should I look for a bike for my daughter?"]),
    (["Pre-owned is my rule for everything I buy."],
     ["Where should I look for a dining table?",
      "How can I furnish a spare bedroom?"]))

# ------------------------------------------------------------------------------------------------ occupation
add("occupation",
    ["rock climbing", "volleyball", "boxing", "martial arts", "basketball", "cricket", "baseball", "handball"],
    ["swimming", "running", "cycling", "yoga", "hiking", "rowing", "pilates", "walking"],
    (["I'm a surgeon and can't risk injuring my hands.",
      "I'm a concert pianist, so a jammed finger could cost me my career."],
     ["Suggest a new sport to pick up.",
      "Suggest a way to get more exercise on weekends.",
      "What activity could I join to meet people and stay fit?"]),
    (["My hands are my livelihood; I'm a professional violinist."],
     ["Recommend a sport I could take up this year.",
      "What physical hobby would suit me?"]))

add("occupation",
    ["gym class", "swimming pool", "team sport", "yoga studio", "spin class", "weekly class"],
    ["resistance band", "bodyweight", "walk", "truck stop", "push-up", "jump rope", "stretching", "rest stop"],
    (["I'm a long-haul truck driver and spend most nights in my cab.",
      "I drive a rig across the country and sleep in my truck."],
     ["How can I stay fit?",
      "Suggest a daily exercise habit.",
      "How can I improve my health this year?"]),
    (["I'm on the road for weeks at a time hauling freight."],
     ["How can I get back in shape?",
      "Suggest a workout plan for the next month."]))

add("occupation",
    ["friday night", "saturday night", "saturday evening", "sunday evening", "dinner date"],
    ["breakfast", "brunch", "lunch", "morning", "weekday", "afternoon", "matinee", "tuesday"],
    (["I'm a restaurant chef, so I work every evening and every weekend.",
      "I'm a bartender, and my shifts run from six until closing, Thursday through Sunday."],
     ["Suggest a date idea for me and my partner.",
      "When could I have friends over for a get-together?",
      "When should I schedule a haircut this month?"]),
    (["I work in hospitality, and my shifts are always nights and weekends."],
     ["Plan a fun outing with my best friend.",
      "Suggest a time and activity for a family meetup."]))

# ---------------------------------------------------------------------------------------------------- phobia
add("phobia",
    ["rock climbing", "zip line", "zipline", "ropes course", "skydiving", "bungee", "climbing wall",
     "hot air balloon"],
    ["escape room", "cooking class", "bowling", "trivia", "scavenger hunt", "go-kart", "board game", "karaoke"],
    (["I'm terrified of heights.",
      "Even standing on a chair makes me dizzy with fear."],
     ["Suggest a fun activity for a team-building day.",
      "What's an exciting thing to try for my birthday?",
      "Plan a memorable day out with my coworkers."]),
    (["I have a crippling fear of high places."],
     ["Plan an adventurous day out for me.",
      "Suggest something thrilling to do with friends this weekend."]))

add("phobia",
    ["snorkeling", "snorkel", "surfing", "scuba", "kayak", "kayaking", "paddleboard"],
    ["hike", "volcano", "luau", "garden", "helicopter", "scenic drive", "museum", "farmers market"],
    (["I can't swim and deep water scares me.",
      "I'm afraid of the ocean and never go in past my ankles."],
     ["Suggest vacation activities in Hawaii.",
      "What should I do on a trip to the Caribbean?"]),
    (["Water frightens me; I've never learned to float."],
     ["Plan a week in Bali for me.",
      "What should I do on a beach holiday in Mexico?"]))

add("phobia",
    ["flight", "airport", "airline", "airfare", "layover", "boarding pass"],
    ["train", "amtrak", "bus", "road trip", "drive", "sleeper", "greyhound", "car"],
    (["Being thousands of feet up in the sky gives me panic attacks.",
      "Air travel terrifies me to the point of tears."],
     ["How should I visit my family on the other side of the country?",
      "How should I get to a friend's wedding in Florida?"]),
    (["I have a phobia of aircraft and won't board one."],
     ["Suggest how to get from Boston to Denver.",
      "What's the best way for me to travel to a conference in Seattle?"]))

add("phobia",
    ["escape room", "cave", "caving", "submarine", "catacomb", "tunnel"],
    ["park", "picnic", "beach", "hike", "outdoor", "open-air", "festival", "rooftop"],
    (["I get claustrophobic in small, enclosed spaces.",
      "Tight, windowless rooms make me panic."],
     ["Suggest a fun activity for a group of friends.",
      "Plan a day of sightseeing in Paris.",
      "What's a unique experience to try on holiday in Rome?"]),
    (["Cramped spaces trigger my anxiety badly."],
     ["What could we do for my brother's bachelor party?",
      "Suggest a unique day trip for the weekend."]))


# ------------------------------------------------------------------------------------------------- building
def matches(term: str, text: str) -> bool:
    """The metric's own matching rule (mipo/behaviour.py: whole word or phrase, case-insensitive, plural s/es)."""
    return mentions(text, term)


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def check(row: dict) -> None:
    where = f"{row['category']}: {row['context']!r} / {row['request']!r}"
    for key in ("avoid", "expect"):
        terms = row[key]
        assert 2 <= len(terms) <= 8, f"{where}: {len(terms)} {key} terms"
        assert len(set(terms)) == len(terms), f"{where}: repeated {key} term"
        for t in terms:
            assert t == t.lower() and len(t) >= 3 and t == t.strip(), f"{where}: bad term {t!r}"
            assert re.match(r"^\w.*\w$", t), f"{where}: term {t!r} must start and end with a letter or digit"
    for t in row["expect"]:
        assert not matches(t, row["context"]), f"{where}: expect {t!r} in context"
        assert not matches(t, row["request"]), f"{where}: expect {t!r} in request"
        for a in row["avoid"]:
            assert not matches(a, t) and not matches(t, a), f"{where}: expect {t!r} overlaps avoid {a!r}"
    for t in row["avoid"]:
        assert not matches(t, row["request"]), f"{where}: avoid {t!r} in request"
        assert not matches(t, row["context"]), f"{where}: avoid {t!r} in context"


def build() -> list[dict]:
    by_split: dict[str, list[dict]] = {"train": [], "test": []}
    for sc in SCENARIOS:
        for split in ("train", "test"):
            contexts, requests = sc[split]
            for context in contexts:
                for request in requests:
                    row = {"context": context, "request": request, "split": split, "avoid": sc["avoid"],
                           "expect": sc["expect"], "category": sc["category"]}
                    check(row)
                    by_split[split].append(row)
    # held-out rows share neither context nor request with any training row
    for key in ("context", "request"):
        train = {norm(r[key]) for r in by_split["train"]}
        clash = sorted({r[key] for r in by_split["test"] if norm(r[key]) in train})
        assert not clash, f"test {key}s also in train: {clash}"
    pairs = Counter((norm(r["context"]), norm(r["request"])) for rows in by_split.values() for r in rows)
    assert max(pairs.values()) == 1, [p for p, n in pairs.items() if n > 1]

    def key(r):
        return hashlib.sha256(f"{r['category']}\n{r['context']}\n{r['request']}".encode()).hexdigest()

    out = []
    for split, prefix in (("train", "pt"), ("test", "ph")):
        # round-robin over the categories (each in a hash-shuffled order), so any prefix of the file
        # (task.n_train / n_eval take the first rows) mixes every category
        groups: dict[str, list[dict]] = {}
        for r in sorted(by_split[split], key=key):
            groups.setdefault(r["category"], []).append(r)
        order = sorted(groups, key=lambda c: hashlib.sha256(c.encode()).hexdigest())
        ordered = []
        for i in range(max(len(g) for g in groups.values())):
            ordered += [groups[c][i] for c in order if i < len(groups[c])]
        for n, r in enumerate(ordered, 1):
            out.append({"id": f"{prefix}{n:04d}", "context": r["context"], "request": r["request"],
                        "split": split, "avoid": list(r["avoid"]), "expect": list(r["expect"]),
                        "category": r["category"]})
    return out


def main() -> None:
    rows = build()
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    counts = Counter((r["category"], r["split"]) for r in rows)
    cats = sorted({c for c, _ in counts})
    for c in cats:
        print(f"{c:12s} train {counts[(c, 'train')]:3d}  test {counts[(c, 'test')]:3d}")
    n_train = sum(r["split"] == "train" for r in rows)
    print(f"{OUT}: {n_train} train, {len(rows) - n_train} test, {len(cats)} categories")


if __name__ == "__main__":
    main()
