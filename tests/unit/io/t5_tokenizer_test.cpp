// The umt5 tokenizer: Wan's text cleaning (expected values from Python's html.unescape and the
// official tokenizers.py), and tokenization with a SentencePiece model trained here by the
// SentencePiece C++ trainer (pad 0, eos 1, unk 2, no bos, as umt5's spiece.model), checked for
// HF's </s>, truncation and padding behaviour.
#include "io/t5_tokenizer.h"

#include <gtest/gtest.h>
#include <sentencepiece_trainer.h>

#include <fstream>
#include <string>

#include "core/error.h"
#include "temp_dir_test.h"

namespace wanbatch::io {
namespace {

TEST(HtmlUnescape, MatchesPythonOnTheSubset) {
  // Each expected value is what Python 3's html.unescape returns.
  EXPECT_EQ(html_unescape("a &amp; b"), "a & b");
  EXPECT_EQ(html_unescape("&amp;amp;"), "&amp;");
  EXPECT_EQ(html_unescape("&lt;tag&gt;"), "<tag>");
  EXPECT_EQ(html_unescape("&quot;q&quot; &#39;s&#39; &apos;x&apos;"), "\"q\" 's' 'x'");
  EXPECT_EQ(html_unescape("a&nbsp;b"),
            "a\xC2\xA0"
            "b");
  EXPECT_EQ(html_unescape("&#65;&#x42;&#x63"), "ABc");
  EXPECT_EQ(html_unescape("&amplifier"), "&lifier");
  EXPECT_EQ(html_unescape("&AMP;"), "&");
  EXPECT_EQ(html_unescape("&#0;"), "\xEF\xBF\xBD");
  EXPECT_EQ(html_unescape("&#x80;&#150;"), "\xE2\x82\xAC\xE2\x80\x93");
  EXPECT_EQ(html_unescape("&#xD800;"), "\xEF\xBF\xBD");
  EXPECT_EQ(html_unescape("&#1;x"), "x");
  EXPECT_EQ(html_unescape("& b"), "& b");
  EXPECT_EQ(html_unescape("&#;"), "&#;");
  EXPECT_EQ(html_unescape("&#x;"), "&#x;");
  EXPECT_EQ(html_unescape("&Amp;"), "&Amp;");
  EXPECT_EQ(html_unescape("&apos"), "&apos");
  EXPECT_EQ(html_unescape("&#1114112;"), "\xEF\xBF\xBD");
  EXPECT_EQ(html_unescape("&#99999999999999999999;"), "\xEF\xBF\xBD");
  EXPECT_EQ(html_unescape("caf\xC3\xA9"), "caf\xC3\xA9");
}

TEST(HtmlUnescape, KnowsEveryHtml5Name) {
  EXPECT_EQ(html_unescape("caf&eacute; &eacute &ltimes; &frac12;"),
            "caf\xC3\xA9 \xC3\xA9 \xE2\x8B\x89 \xC2\xBD");
  EXPECT_EQ(html_unescape("&notit; &bogus;"), "\xC2\xACit; &bogus;");  // "not" is a prefix entry
}

TEST(WanCleanText, UnescapesTwiceStripsAndCollapsesWhitespace) {
  EXPECT_EQ(wan_clean_text("  a cat\t\n on  a   mat  "), "a cat on a mat");
  EXPECT_EQ(wan_clean_text("fish &amp;amp; chips"), "fish & chips");  // unescaped twice
  EXPECT_EQ(wan_clean_text("a&nbsp;&nbsp;b"), "a b");                 // U+00A0 is whitespace
  EXPECT_EQ(wan_clean_text("a\xE3\x80\x80"
                           "b\xE2\x80\x83"
                           "c"),
            "a b c");  // U+3000, U+2003
  EXPECT_EQ(wan_clean_text("\x1f"
                           "a\x1f"),
            "a");  // str.strip's separators
  EXPECT_EQ(wan_clean_text(""), "");
  EXPECT_EQ(wan_clean_text(" \t "), "");
  EXPECT_EQ(wan_clean_text("\xE4\xB8\x80\xE5\x8F\xAA\xE7\x8C\xAB"),
            "\xE4\xB8\x80\xE5\x8F\xAA\xE7\x8C\xAB");
}

TEST(WanCleanText, UncurlsQuotesAsFtfyDoes) {
  EXPECT_EQ(wan_clean_text("\xE2\x80\x9Chi\xE2\x80\x9D it\xE2\x80\x99s"), "\"hi\" it's");
}

TEST(WanCleanText, KeepsInvalidUtf8Bytes) { EXPECT_EQ(wan_clean_text("a\xFF  b"), "a\xFF b"); }

class T5TokenizerTest : public wanbatch::testing::TempDirTest {
 protected:
  // A small unigram model with umt5's special ids.
  std::string train() {
    const auto corpus = dir_ / "corpus.txt";
    std::ofstream out(corpus);
    const char* lines[] = {"a cat sits on a mat",
                           "the dog runs in the park",
                           "a red car drives down the road",
                           "birds fly over the sea at dawn",
                           "the cat and the dog play",
                           "a video of waves on the beach"};
    for (int r = 0; r < 20; ++r) {
      for (const char* line : lines) out << line << "\n";
    }
    out.close();
    const std::string prefix = (dir_ / "spiece").string();
    const auto status = sentencepiece::SentencePieceTrainer::Train(
        "--input=" + corpus.string() + " --model_prefix=" + prefix +
        " --vocab_size=40 --model_type=unigram --pad_id=0 --eos_id=1 --unk_id=2 --bos_id=-1"
        " --minloglevel=2 --hard_vocab_limit=false");
    EXPECT_TRUE(status.ok()) << status.ToString();
    return prefix + ".model";
  }
};

TEST_F(T5TokenizerTest, AppendsEosAndPads) {
  const T5Tokenizer tokenizer(train());
  EXPECT_EQ(tokenizer.eos_id(), 1);
  EXPECT_EQ(tokenizer.pad_id(), 0);
  const std::vector<int64_t> pieces = tokenizer.encode_ids("a cat sits on a mat");
  ASSERT_FALSE(pieces.empty());
  const T5Tokens tokens = tokenizer.tokenize("  a cat   sits on a mat ", 40);
  EXPECT_EQ(tokens.cleaned, "a cat sits on a mat");
  ASSERT_EQ(tokens.ids.size(), 40u);
  EXPECT_EQ(tokens.length, static_cast<int64_t>(pieces.size()) + 1);
  for (size_t i = 0; i < pieces.size(); ++i) EXPECT_EQ(tokens.ids[i], pieces[i]);
  EXPECT_EQ(tokens.ids[pieces.size()], 1);
  for (size_t i = pieces.size() + 1; i < 40; ++i) EXPECT_EQ(tokens.ids[i], 0);
}

TEST_F(T5TokenizerTest, TruncationKeepsEosLast) {
  const T5Tokenizer tokenizer(train());
  const std::string text = "the dog runs in the park and a red car drives down the road";
  const std::vector<int64_t> pieces = tokenizer.encode_ids(text);
  ASSERT_GT(pieces.size(), 5u);
  const T5Tokens tokens = tokenizer.tokenize(text, 5);
  ASSERT_EQ(tokens.ids.size(), 5u);
  EXPECT_EQ(tokens.length, 5);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(tokens.ids[i], pieces[i]);
  EXPECT_EQ(tokens.ids[4], 1);
  // Exactly text_len − 1 pieces: nothing cut.
  const T5Tokens exact = tokenizer.tokenize(text, static_cast<int64_t>(pieces.size()) + 1);
  EXPECT_EQ(exact.length, static_cast<int64_t>(pieces.size()) + 1);
  EXPECT_EQ(exact.ids.back(), 1);
}

TEST_F(T5TokenizerTest, EmptyPromptIsEosAlone) {
  const T5Tokenizer tokenizer(train());
  const T5Tokens tokens = tokenizer.tokenize(" \n ", 4);
  EXPECT_EQ(tokens.length, 1);
  EXPECT_EQ(tokens.ids, (std::vector<int64_t>{1, 0, 0, 0}));
}

TEST_F(T5TokenizerTest, RejectsMissingOrBrokenModel) {
  EXPECT_THROW(T5Tokenizer((dir_ / "absent.model").string()), Error);
  const auto bad = dir_ / "bad.model";
  std::ofstream(bad) << "not a model";
  try {
    T5Tokenizer tokenizer(bad.string());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.model"), std::string::npos) << e.what();
  }
}

TEST_F(T5TokenizerTest, RejectsTextLenZero) {
  const T5Tokenizer tokenizer(train());
  EXPECT_THROW(tokenizer.tokenize("a cat", 0), Error);
}

}  // namespace
}  // namespace wanbatch::io
