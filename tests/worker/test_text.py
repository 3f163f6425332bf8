from worker.text import normalise, request_texts


def test_normalise() -> None:
    assert normalise(" Ｈｅｌｌｏ\u200b  world\n\tagain！ ") == "Hello world again!"
    assert normalise("안녕하세요.\x00 반갑습니다") == "안녕하세요. 반갑습니다"
    assert normalise(" \u200b\n ") == ""


def test_short_line_is_one_request() -> None:
    assert request_texts("  One sentence.  Two. ", 100) == ["One sentence. Two."]
    assert request_texts("\u200b", 100) == []


def test_long_line_is_cut_at_sentence_ends() -> None:
    text = " ".join(f"Sentence {i} is here." for i in range(40))
    parts = request_texts(text, 120)
    assert len(parts) > 1 and all(len(p) <= 120 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts) == normalise(text)
