// A tiny DeepSeek-V3 config.json (MLA with q LoRA, one dense layer, a shared expert, group-limited
// routing), small enough to count by hand: the inspect tests build on it.
export const TINY_DEEPSEEK_V3 = {
  model_type: 'deepseek_v3',
  vocab_size: 8,
  hidden_size: 4,
  num_hidden_layers: 2,
  first_k_dense_replace: 1,
  intermediate_size: 5,
  moe_intermediate_size: 2,
  n_routed_experts: 4,
  n_shared_experts: 1,
  num_experts_per_tok: 2,
  num_attention_heads: 2,
  q_lora_rank: 3,
  kv_lora_rank: 2,
  qk_nope_head_dim: 2,
  qk_rope_head_dim: 1,
  v_head_dim: 2,
  n_group: 2,
  topk_group: 1,
};
