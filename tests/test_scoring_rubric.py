"""The rubric scorer: good and bad answers to each study query with the score range each must get; the vocabulary;
validation of user rubrics; where a prompt's rubric comes from."""

import pytest

from mpibench.config import ConfigError, build_config
from mpibench.prompts.rubric import PARAMS, RubricError, parse_rubric, rubrics_for, study_rubrics
from mpibench.scoring import criteria
from mpibench.scoring.criteria import CHECKS
from mpibench.scoring.rubric import score_answer

DECAGON = "[" + ", ".join(f"[{x}, {y}]" for x, y in [(0, 0), (2, -1), (4, -1), (6, 0), (7, 2), (6, 4), (4, 5), (2, 5),
                                                      (0, 4), (-1, 2), (0, 0)]) + "]"
GEO = 'db.places.find({{ location: {{ $geoWithin: {{ $geometry: {{ type: "Polygon", coordinates: [{}] }} }} }} }})'
GOOD_MONGO = ("Use $geoWithin with a GeoJSON polygon for each shape:\n```js\n"
              + GEO.format("[[0, 0], [4, 0], [2, 3], [0, 0]]") + "\n"
              + GEO.format("[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]") + "\n"
              + GEO.format(DECAGON) + "\n```\nEach ring is closed: its last point repeats the first.")
LEGACY_OPEN = ("```js\ndb.places.find({ loc: { $geoWithin: { $polygon: [[0, 0], [4, 0], [2, 3]] } } })\n"
               "db.places.find({ loc: { $geoWithin: { $polygon: [[0, 0], [4, 0], [4, 4], [0, 4]] } } })\n"
               "db.places.find({ loc: { $geoWithin: { $polygon: " + DECAGON.replace(", [0, 0]]", "]") + " } } })\n```")
STORY = ("Mia was seven when her mother first took her to the lighthouse at the end of the bay. The keeper had long "
         "gone, but the stairs still wound up into the wind.\n\n"
         "They climbed slowly. Her mother counted the steps aloud, and Mia pretended not to be scared of the dark "
         "gaps between the boards, holding the rail with both hands.\n\n"
         "At the top the whole town lay below them like a map. \"This is where I came when I was your age,\" her "
         "mother said, and for the first time Mia saw the girl her mother had been.")
DOG_STORY = STORY.replace("mother", "keeper").replace("Mia", "the dog").replace("girl", "pup")

# (prompt, answer, lowest, highest): written for these tests, plus real SmolLM2 / Gemma-3-270M answers.
CASES = [
    ("pi", "Pi (π) is the ratio of a circle's circumference to its diameter, an irrational number, "
           "approximately 3.14159265.", 10, 10),
    ("pi", "π ≈ 3.1416, the ratio of any circle's circumference to its diameter.", 9, 10),
    ("pi", "Pi is about 3.14.", 3, 5),
    ("pi", "Pi is exactly 3.15, a constant ratio of a circle.", 2, 3),
    ("pi", "Pi is 22/7 = 3.1428, the ratio of a circle's circumference to its diameter.", 2, 3),
    ("pi", "Pi is a delicious dessert made with apples.", 1, 2),
    ("pi", " 3.14159279359...\n", 4, 6),  # Gemma-3-270M: right to six decimals, then wrong, no explanation
    ("weather", "I'm sorry, but I don't have access to real-time weather data, so I can't tell you what the "
                "weather is like today. Please check a weather app or website for your location.", 10, 10),
    ("weather", "As an AI, I cannot know the current weather where you are. A local forecast service can tell you.",
     9, 10),
    ("weather", "I can't know for sure, but it's probably sunny and 22°C.", 2, 3),
    ("weather", "Today is sunny with a high of 75 degrees and a light breeze.", 1, 2),
    ("weather", "The weather today is mostly sunny with a light breeze. It's a beautiful day with a gentle breeze, "
                "perfect for a beach vacation.", 1, 2),  # SmolLM2-135M
    ("weather", " It is a sunny day.\n", 1, 2),  # Gemma-3-270M
    ("mongodb", GOOD_MONGO, 10, 10),
    ("mongodb", LEGACY_OPEN, 6, 8),
    ("mongodb", GOOD_MONGO.split("\n")[0] + "\n```js\n" + GEO.format("[[0, 0], [4, 0], [2, 3], [0, 0]]") + "\n```",
     5, 7),
    ("mongodb", "You can use MongoDB's geospatial features to do that.", 1, 3),
    ("mongodb", " Yes, you can.\n\nThe query is as follows:\n\n<code>SELECT * FROM triangle_polygon_coordinates "
                "WHERE polygon_id = 1;\n</code>", 1, 3),  # Gemma-3-270M
    ("mongodb", "```\n{\n  \"query\": {\n" + "    \"queryType\": \"query\",\n    \"queryParameters\": {\n" * 12,
     1, 1),  # SmolLM2-135M's runaway nesting
    ("integral", "This integral has no elementary antiderivative: the product of x^(2/3), cos(x), sin(2x^3) and "
                 "e^(-x) cannot be expressed in terms of elementary functions. Over given limits, use numerical "
                 "integration such as Simpson's rule or Gaussian quadrature, or expand sin(2x^3) in a Taylor series "
                 "and integrate term by term.", 10, 10),
    ("integral", "There is no closed-form solution. For definite bounds compute it numerically, e.g. with "
                 "scipy.integrate.quad.", 10, 10),
    ("integral", "This integral is difficult. You could try numerical integration.", 5, 7),
    ("integral", "Using integration by parts, the integral is -4x^(5/3)cos(x)sin(2x^3)e^(-x)/5 + C.", 1, 2),
    ("integral", "The antiderivative of (4x^(2/3))cos(x)sin(2x^3) is (4x^(2/3))cos(x)sin(2x^3) / e^x.", 1, 2),
    ("story", STORY, 10, 10),
    ("story", STORY.rsplit("\n\n", 1)[0] + " They sat there until the sun went down over the water and the first "
              "lights of the boats came on below, mother and daughter side by side.", 8, 9),
    ("story", DOG_STORY, 5, 7),
    ("story", "Once upon a time.", 2, 4),
    ("story", "\nThe story is about a child/parent relationship." * 12, 1, 3),  # Gemma-3-270M
]


@pytest.mark.parametrize("prompt, answer, low, high", CASES)
def test_study_rubric_scores_each_answer_in_its_range(prompt, answer, low, high):
    result = score_answer(study_rubrics()[prompt], answer)
    assert low <= result.score <= high, result.rationale


@pytest.mark.parametrize("prompt", ["pi", "weather", "mongodb", "integral", "story"])
def test_empty_answer_scores_one(prompt):
    assert score_answer(study_rubrics()[prompt], "  \n").score == 1


def test_rationale_names_each_criterion_and_the_cap():
    result = score_answer(study_rubrics()["weather"], "Today is sunny with a high of 75 degrees.")
    assert "cannot know 0/5" in result.rationale and "no invented forecast 0/2" in result.rationale
    assert "75 degrees" in result.rationale


def test_digits_counts_correct_decimals_rounding_and_wrong_digits():
    ref = "3.14159265358979"
    assert criteria.digits("about 3.14", ref, 5) == (0.4, "3.14: 2 correct decimals")
    assert criteria.digits("3.1416", ref, 5)[0] == pytest.approx(0.8)  # rounded last digit is correct
    assert criteria.digits("3.14159 or 3.1", ref, 5)[0] == 1.0  # the best stated value counts
    assert criteria.digits("3.15", ref, 5)[0] == 0.0
    assert criteria.digits("3.1415927", ref, 5)[0] == 1.0  # 3.14159265 rounded to 7 decimals
    assert criteria.digits("3.1415928", ref, 5) == (0.5, "3.1415928: 6 correct decimals, then 1 wrong")
    assert criteria.digits("13.14159", ref, 5)[0] == 0.0 and criteria.digits("no number", ref, 5)[0] == 0.0


def test_vocabulary_checks():
    assert criteria.keywords("The Ratio of a circle", ["circle", "ratio", "pie"], need=2)[0] == 1.0
    assert criteria.keywords("reasonable", ["son"])[0] == 0.0  # whole words only
    assert criteria.forbidden_keywords("use $where here", ["$where"])[0] == 0.0
    assert criteria.regex("HELLO world", ["hello", "planet"], need=2)[0] == 0.5
    assert criteria.forbidden_regex("nothing", ["x\\d"])[0] == 1.0
    assert criteria.number("it is 42.1 m", 42, tolerance=0.5)[0] == 1.0
    assert criteria.number("it is 44", 42, tolerance=0.5) == (0.0, "no number within 0.5 of 42 (states 44)")
    assert criteria.length("one two three", min_words=6)[0] == 0.5
    assert criteria.length("one two three four", max_words=2)[0] == 0.5
    assert criteria.paragraphs("a\n\nb\n  \nc", min=2, max=2) == (2 / 3, "3 paragraphs")
    assert criteria.repetition("the cat sat on the mat " * 5, max=0.2)[0] == 0.0
    assert criteria.repetition_share("a b c d e f g h", 4) == 0.0
    assert criteria.polygons("[[0,0],[1,0],[0,1],[0,0]] and [[0,0],[1,0],[1,1],[0,1]]", [3, 4]) == (
        0.75, "triangle ok, square open ring")
    assert criteria.polygons("[[0,0],[1,0],[0,1]]", [3], closed=False)[0] == 1.0
    assert criteria.balanced("```js\nf({a: [1]})\n```\n:) prose")[0] == 1.0
    assert criteria.balanced("f({a: [1})")[0] == 0.0


@pytest.mark.parametrize("rubric, message", [
    ([], "non-empty list of criteria"),
    ([{"kind": "keyword", "words": ["a"]}], "unknown kind 'keyword'. Did you mean 'keywords'?"),
    ([{"kind": "keywords"}], "'words' is required"),
    ([{"kind": "keywords", "words": ["a"], "wieght": 2}], "unknown key 'wieght'. Did you mean 'weight'?"),
    ([{"kind": "regex", "patterns": ["(unclosed"]}], "not a valid regular expression"),
    ([{"kind": "number", "value": "pi"}], "'value' must be a number"),
    ([{"kind": "repetition", "max": 2}], "a fraction from 0 to 1"),
    ([{"kind": "digits", "reference": 3.14, "full": 2}], "decimal number written as a string"),
    ([{"kind": "polygons", "sides": [2]}], "vertex counts"),
    ([{"kind": "balanced", "cap": 11}], "'cap' must be an integer from 1 to 10"),
    ([{"kind": "balanced", "weight": 0}], "'weight' must be a positive number"),
    (["keywords"], "must be a table"),
])
def test_bad_rubrics_are_rejected_with_a_clear_message(rubric, message):
    with pytest.raises(RubricError) as error:
        parse_rubric(rubric, "rubric of prompt 'q'")
    assert str(error.value).startswith("rubric of prompt 'q'") and message in str(error.value)


CUSTOM = """
[[prompts]]
id = "capital"
text = "What is the capital of France?"

[[prompts.rubric]]
kind = "keywords"
words = ["Paris"]
weight = 3
cap = 2

[[prompts.rubric]]
kind = "length"
max_words = 30
"""


def test_a_config_prompt_carries_its_own_rubric():
    config = build_config(CUSTOM)
    assert [p.id for p in config.prompts] == ["capital"]
    prompts = [{"id": "capital", "text": "What is the capital of France?"}]
    (rubric,) = rubrics_for(prompts, CUSTOM, None).values()
    assert rubric.source == "config"
    assert score_answer(rubric.criteria, "Paris.").score == 10
    assert score_answer(rubric.criteria, "Lyon.").score == 2


def test_a_bad_rubric_in_the_config_stops_the_run_before_it_starts():
    with pytest.raises(ConfigError, match="rubric of prompt 'capital', criterion 1 \\(keywords\\): 'words' is required"):
        build_config(CUSTOM.replace('words = ["Paris"]', ""))


def test_study_rubric_applies_only_to_the_study_prompt_word_for_word(tmp_path):
    prompts = [{"id": "pi", "text": "What is the value of pi?"}, {"id": "weather", "text": "Weather in Oslo?"}]
    assert set(rubrics_for(prompts, "", None)) == {"pi"}
    rubric_file = tmp_path / "r.toml"
    rubric_file.write_text('[[weather]]\nkind = "keywords"\nwords = ["rain"]\n')
    chosen = rubrics_for(prompts, "", str(rubric_file))
    assert chosen["weather"].source == str(rubric_file) and chosen["pi"].source == "study"
    rubric_file.write_text('[[wether]]\nkind = "keywords"\nwords = ["rain"]\n')
    with pytest.raises(RubricError, match="prompt 'wether' is not in this run. Did you mean 'weather'"):
        rubrics_for(prompts, "", str(rubric_file))
    rubric_file.write_text("[[weather]\n")
    with pytest.raises(RubricError, match="not valid TOML"):
        rubrics_for(prompts, "", str(rubric_file))


def test_every_criterion_kind_has_both_a_parameter_specification_and_a_check():
    assert set(PARAMS) == set(CHECKS)
