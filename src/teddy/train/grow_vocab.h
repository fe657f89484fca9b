#pragma once
// Growing a trained model's vocabulary for new special tokens (chat-template markers).
#include "teddy/model/model.h"

namespace teddy {

// A copy of `src` whose vocabulary is `new_vocab` ids: vocab_size = new_vocab, and
// padded_vocab_size = pad_vocab(new_vocab) if the old padding has no room (else
// unchanged). Every parameter is copied; the rows of the new ids in the token
// embedding (and in an untied lm head) are set to the mean of the existing rows, so a
// new token starts as an "average" token: its logit starts near the mean logit
// instead of a random one, and the model's predictions barely move (Hewitt, 2021).
// Throws Error if new_vocab < src's vocab_size.
Model grow_vocab(const Model& src, int new_vocab);

}  // namespace teddy
